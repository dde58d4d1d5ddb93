package apolloserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Java exception class names Apollo puts in the "exception" field.
const (
	exBadRequest        = "com.ctrip.framework.apollo.common.exception.BadRequestException"
	exNotFound          = "com.ctrip.framework.apollo.common.exception.NotFoundException"
	exNamespaceNotFound = "com.ctrip.framework.apollo.common.exception.NamespaceNotFoundException"
	exAccessDenied      = "org.springframework.security.access.AccessDeniedException"
	exIllegalArgument   = "java.lang.IllegalArgumentException"
	exNullPointer       = "java.lang.NullPointerException"
	exMissingParam      = "org.springframework.web.bind.MissingServletRequestParameterException"
	exTypeMismatch      = "org.springframework.web.method.annotation.MethodArgumentTypeMismatchException"
	exNotReadable       = "org.springframework.http.converter.HttpMessageNotReadableException"
	exMediaType         = "org.springframework.web.HttpMediaTypeNotSupportedException"
	exMethod            = "org.springframework.web.HttpRequestMethodNotSupportedException"
)

// apiError is an error rendered the way Apollo's GlobalDefaultExceptionHandler
// renders it: {"exception","message","status","timestamp"}.
//
// forwarded marks errors raised by Apollo's admin service: the portal relays
// them by parsing the admin body with Gson into Map<String,Object>, which
// turns the status into a Double, so the portal answers "status":400.0
// (visible in apolloconfig/apollo#2158). Errors raised by the portal itself
// carry an integer status.
type apiError struct {
	status    int
	message   string
	exception string
	forwarded bool
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.message) }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: 400, message: sprintf(format, args...), exception: exBadRequest}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: 404, message: sprintf(format, args...), exception: exNotFound}
}

// admin marks an error as raised by the admin service and relayed by the portal.
func (e *apiError) admin() *apiError { e.forwarded = true; return e }

func forbidden(msg string) *apiError {
	return &apiError{status: 403, message: msg, exception: exAccessDenied}
}

func internal(exception, msg string) *apiError {
	return &apiError{status: 500, message: msg, exception: exception}
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// javaLocalDateTime formats like LocalDateTime.now().format(ISO_LOCAL_DATE_TIME).
func javaLocalDateTime(t time.Time) string {
	s := t.Format("2006-01-02T15:04:05")
	ms := t.Nanosecond() / int(time.Millisecond)
	if ms != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", ms), "0")
	}
	return s
}

// gsonDate formats a java.util.Date the way Apollo's Gson converter does
// (pattern "yyyy-MM-dd'T'HH:mm:ss.SSSZ").
func gsonDate(t time.Time) string {
	return t.Format("2006-01-02T15:04:05.000-0700")
}

func (s *Server) writeAPIError(w http.ResponseWriter, e *apiError) {
	status := json.RawMessage(strconv.Itoa(e.status))
	if e.forwarded {
		status = json.RawMessage(strconv.Itoa(e.status) + ".0")
	}
	body := struct {
		Exception string          `json:"exception"`
		Message   *string         `json:"message,omitempty"`
		Status    json.RawMessage `json:"status"`
		Timestamp string          `json:"timestamp"`
	}{Exception: e.exception, Status: status, Timestamp: javaLocalDateTime(s.now())}
	if e.message != "" {
		msg := e.message
		body.Message = &msg
	}
	writeJSON(w, e.status, body)
}

// writeSendError renders what Spring Boot's error controller produces for
// HttpServletResponse.sendError (filters such as the access-key and consumer
// token checks) and for unmapped paths.
func (s *Server) writeSendError(w http.ResponseWriter, r *http.Request, status int, message string) {
	body := struct {
		Timestamp string `json:"timestamp"`
		Status    int    `json:"status"`
		Error     string `json:"error"`
		Message   string `json:"message"`
		Path      string `json:"path"`
	}{gsonDate(s.now()), status, http.StatusText(status), message, r.URL.Path}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

// writeNull is what Spring writes when a controller returns null: 200, no body.
func writeNull(w http.ResponseWriter) {
	w.WriteHeader(http.StatusOK)
}

func missingParam(name string) *apiError {
	return internal(exMissingParam, fmt.Sprintf("Required request parameter '%s' for method parameter type String is not present", name))
}
