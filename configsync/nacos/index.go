package nacos

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/spec"
)

// ErrBadIndex is wrapped by errors about an index document that cannot be
// read as a list of app names. graylane then keeps the app list it had.
var ErrBadIndex = errors.New("malformed graylane index document")

// index is the parsed index document:
//
//	# graylane release index ...
//	apps:
//	  - checkout
//	  - payments
type index struct {
	Apps []string `json:"apps"`
}

// parseIndex reads an index document. An empty document is an empty index.
// Names that are not valid app names are an error: a typo must not make an
// app disappear silently.
func parseIndex(data string) ([]string, error) {
	if strings.TrimSpace(data) == "" {
		return nil, nil
	}
	var ix index
	if err := yaml.UnmarshalStrict([]byte(data), &ix); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIndex, err)
	}
	seen := map[string]bool{}
	var apps []string
	for _, a := range ix.Apps {
		if err := spec.CheckApp(a); err != nil {
			return nil, fmt.Errorf("%w: app %q: %w", ErrBadIndex, a, err)
		}
		if !seen[a] {
			seen[a] = true
			apps = append(apps, a)
		}
	}
	slices.Sort(apps)
	return apps, nil
}

// renderIndex writes an index document listing apps (sorted, unique).
func renderIndex(apps []string) string {
	apps = slices.Clone(apps)
	slices.Sort(apps)
	apps = slices.Compact(apps)
	var b bytes.Buffer
	b.WriteString("# graylane release index: the apps whose release documents graylane reads\n")
	b.WriteString("# from this group (dataId = app name). graylane adds an app when it publishes\n")
	b.WriteString("# its release and removes it when it deletes it; operators may edit the list.\n")
	if len(apps) == 0 {
		b.WriteString("apps: []\n")
		return b.String()
	}
	b.WriteString("apps:\n")
	for _, a := range apps {
		b.WriteString("  - " + a + "\n")
	}
	return b.String()
}
