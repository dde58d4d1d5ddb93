package records

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/redact"
	"github.com/graylane/graylane/internal/udiff"
	"github.com/graylane/graylane/spec"
)

// SpecText renders a release for a revision record: YAML with stable key
// order, config file contents replaced by their size and digest (the
// contents are in the config history), credential-looking values
// redacted, and at most MaxSpecBytes.
func SpecText(rel *spec.Release) string {
	if rel == nil {
		return ""
	}
	c := rel.Clone()
	if c.Config != nil {
		for i := range c.Config.Files {
			f := &c.Config.Files[i]
			if f.Content != nil {
				sum, err := configwire.FileDigest(f.FileFormat(), []byte(*f.Content))
				if err != nil {
					sum = "invalid"
				}
				s := fmt.Sprintf("<%d bytes, sha256 %s>", len(*f.Content), configwire.Short(sum))
				f.Content = &s
			}
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return ""
	}
	y, err := yaml.Marshal(redact.Value(v))
	if err != nil {
		return ""
	}
	if len(y) > MaxSpecBytes {
		return string(y[:MaxSpecBytes]) + "\n# ... truncated\n"
	}
	return stripLines(string(y))
}

func unified(a, b, x, y string) string { return udiff.Unified(a, b, x, y, MaxSpecDiffLines) }
