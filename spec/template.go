package spec

import (
	"strings"
	"text/template"
)

// renderTemplate executes s as a Go template over data; a string without
// "{{" is returned as is. Missing keys are errors, so a typo in a template
// is caught by validation instead of rendering "<no value>".
func renderTemplate(s string, data any) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("t").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}
