package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every validation error.
var ErrInvalid = errors.New("invalid release spec")

// FieldError is one problem with one field of a spec.
type FieldError struct {
	// Path is the field path in the document, e.g. "strategy.steps[2].setWeight".
	Path string
	// Msg says what is wrong, e.g. "150 is over 100".
	Msg string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError collects every FieldError found in a spec.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Field is the path of the first error, for APIs that report one field.
func (e *ValidationError) Field() string {
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Path
}

// errs accumulates field errors while walking a spec.
type errs []FieldError

func (e *errs) add(path, format string, args ...any) {
	*e = append(*e, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e errs) err() error {
	if len(e) == 0 {
		return nil
	}
	return &ValidationError{Errors: e}
}

// FieldOf returns the field path of a validation error, or "" for other errors.
func FieldOf(err error) string {
	var verr *ValidationError
	if errors.As(err, &verr) {
		return verr.Field()
	}
	return ""
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
