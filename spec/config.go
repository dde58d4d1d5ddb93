package spec

import (
	"encoding/json"
	"path"
	"regexp"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Config file formats.
const (
	FormatYAML       = "yaml"
	FormatJSON       = "json"
	FormatProperties = "properties"
)

// Limits of the config section. A release's config is kept in graylane's
// etcd (history) and written to every target, so it stays small.
const (
	// MaxConfigFileBytes bounds one config file.
	MaxConfigFileBytes = 256 << 10
	// MaxConfigBytes bounds all files of one release together.
	MaxConfigBytes = 1 << 20
	// MaxConfigFiles bounds the files of one release.
	MaxConfigFiles = 32
	// MaxConfigTargets bounds the targets of one release.
	MaxConfigTargets = 16
	// MaxApolloValue is Apollo's default item value limit, in UTF-16 code
	// units (item.value.length.limit).
	MaxApolloValue = 20000
	// DefaultConfigReportPath is where graylane asks an instance which
	// config it loaded (sdk/config serves it).
	DefaultConfigReportPath = "/graylane/config"
)

// Drift policies (config.onDrift).
const (
	DriftReport = "report"
	DriftRepair = "repair"
)

var (
	// ConfigFileNamePattern is what a config file name may look like; it
	// becomes part of keys, dataIds and namespaces.
	ConfigFileNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	// nacosNamePattern is what Nacos accepts in a dataId, group or
	// namespace (ParamUtils.isValid).
	nacosNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,256}$`)
	// apolloNamePattern is what Apollo accepts in an appId, cluster or
	// namespace name (InputValidator.CLUSTER_NAMESPACE_VALIDATOR).
	apolloNamePattern = regexp.MustCompile(`^[0-9a-zA-Z_.-]{1,128}$`)
)

// Config is the configuration bound to a code version: the files the
// app's services read, and the targets (config-centre locations) they read
// them from. When the release's version changes, graylane writes the new
// files to a version-bound location on every target, so that only the new
// version's instances load them, and makes them the stable config when the
// release is promoted; a rollback restores the previous version's files on
// every target together with the code. A change of the files alone (same
// version) is released the same way, under the release identity
// "<version>_cfg<8 hex of the config digest>". See docs/config.md.
//
//	config:
//	  files:
//	    - name: application.yaml
//	      content: |
//	        greeting: hello from v2
//	      schema: {type: object, required: [greeting]}
//	  targets:
//	    - etcd: {key: "/config/{{.App}}/{{.File}}"}
//	    - nacos: {group: DEFAULT_GROUP, dataId: "{{.App}}-{{.File}}"}
//	    - apollo: {appId: "{{.App}}", namespace: "{{.File}}"}
//	  onDrift: repair
type Config struct {
	// Files are the config files bound to this version.
	Files []ConfigFile `json:"files"`
	// Targets are where the app's services read the files from.
	Targets []ConfigTarget `json:"targets"`
	// OnDrift says what graylane does when a target's stable config is
	// changed behind its back: report (default) or repair.
	OnDrift string `json:"onDrift,omitempty"`
	// VerifyInstances makes traffic wait until every instance of a new
	// release reports the checksum of the config it loaded (default true;
	// set false for services that cannot report, see docs/config.md).
	VerifyInstances *bool `json:"verifyInstances,omitempty"`
	// ReportPath is the HTTP path on each instance that reports the loaded
	// config (DefaultConfigReportPath).
	ReportPath string `json:"reportPath,omitempty"`
	// Overlay is this environment's own values, by file name, laid over
	// the files (overlay.go): what a promotion does not carry.
	Overlay map[string]json.RawMessage `json:"overlay,omitempty"`
}

// ConfigFile is one config file. Exactly one of Content and ContentRef is
// set.
type ConfigFile struct {
	// Name names the file, e.g. application.yaml; targets render it into
	// their locations as {{.File}}.
	Name string `json:"name"`
	// Format is yaml, json or properties (default: from the name's
	// extension: .yaml/.yml, .json, .properties).
	Format string `json:"format,omitempty"`
	// Content is the file, inline.
	Content *string `json:"content,omitempty"`
	// ContentRef is a key in graylane's etcd holding the file; it is read
	// and validated when the release is processed.
	ContentRef string `json:"contentRef,omitempty"`
	// Schema is an optional JSON Schema (any draft; 2020-12 unless $schema
	// says otherwise) the parsed file must satisfy. For properties files
	// the instance is the flat object of keys to string values. Remote
	// $refs are not loaded.
	Schema any `json:"schema,omitempty"`
	// Secrets names keys whose values are secret (a key name, or a dotted
	// path's last part): graylane shows the file with them redacted to
	// readers without a write token (GET .../config/history). Keys that
	// look like credentials (password, token, secret, apiKey, ...) are
	// redacted anyway.
	Secrets []string `json:"secrets,omitempty"`
}

// FileFormat returns the file's format, with its default.
func (f *ConfigFile) FileFormat() string {
	if f.Format != "" {
		return f.Format
	}
	return FormatOfName(f.Name)
}

// FormatOfName guesses a format from a file name's extension ("" when it
// cannot tell).
func FormatOfName(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return FormatYAML
	case ".json":
		return FormatJSON
	case ".properties":
		return FormatProperties
	}
	return ""
}

// DriftPolicy returns OnDrift with its default.
func (c *Config) DriftPolicy() string {
	if c.OnDrift == "" {
		return DriftReport
	}
	return c.OnDrift
}

// VerifiesInstances returns VerifyInstances with its default.
func (c *Config) VerifiesInstances() bool { return c.VerifyInstances == nil || *c.VerifyInstances }

// EffectiveReportPath returns ReportPath with its default.
func (c *Config) EffectiveReportPath() string {
	if c.ReportPath == "" {
		return DefaultConfigReportPath
	}
	return c.ReportPath
}

// File returns the named file, or nil.
func (c *Config) File(name string) *ConfigFile {
	for i := range c.Files {
		if c.Files[i].Name == name {
			return &c.Files[i]
		}
	}
	return nil
}

func (c *Config) validate(p string, e *errs) {
	c.validateFor("", p, e)
}

// ValidateFor checks the section as part of app's release: formats,
// schemas, sizes and targets (with rendered locations), returning a
// *ValidationError whose paths start with "config.". Files given by
// ContentRef are checked only for their shape; pass their content in
// resolved (by file index) to check them too.
func (c *Config) ValidateFor(app string, resolved map[int][]byte) error {
	var e errs
	c.validateResolved(app, "config", resolved, &e)
	return e.err()
}

func (c *Config) validateFor(app, p string, e *errs) { c.validateResolved(app, p, nil, e) }

func (c *Config) validateResolved(app, p string, resolved map[int][]byte, e *errs) {
	if app == "" {
		app = "app"
	}
	if len(c.Files) == 0 {
		e.add(join(p, "files"), "is required (at least one file)")
	}
	if len(c.Files) > MaxConfigFiles {
		e.add(join(p, "files"), "%d files, over the limit of %d", len(c.Files), MaxConfigFiles)
	}
	if len(c.Targets) == 0 {
		e.add(join(p, "targets"), "is required (at least one etcd, nacos or apollo target)")
	}
	if len(c.Targets) > MaxConfigTargets {
		e.add(join(p, "targets"), "%d targets, over the limit of %d", len(c.Targets), MaxConfigTargets)
	}
	switch c.OnDrift {
	case "", DriftReport, DriftRepair:
	default:
		e.add(join(p, "onDrift"), "%q is not report or repair", c.OnDrift)
	}
	if c.ReportPath != "" && !strings.HasPrefix(c.ReportPath, "/") {
		e.add(join(p, "reportPath"), "%q must start with /", c.ReportPath)
	}
	total := 0
	names := map[string]bool{}
	contents := map[string]string{} // file name -> content known now
	for i := range c.Files {
		f := &c.Files[i]
		fp := index(join(p, "files"), i)
		if !ConfigFileNamePattern.MatchString(f.Name) {
			e.add(join(fp, "name"), "%q is not a file name (letters, digits, '.', '_', '-'; at most 100; no /)", f.Name)
		} else if names[f.Name] {
			e.add(join(fp, "name"), "%q is used twice", f.Name)
		}
		names[f.Name] = true
		format := f.FileFormat()
		switch {
		case f.Format != "" && f.Format != FormatYAML && f.Format != FormatJSON && f.Format != FormatProperties:
			e.add(join(fp, "format"), "%q is not yaml, json or properties", f.Format)
			continue
		case format == "":
			e.add(join(fp, "format"), "is required: the name %q has no .yaml, .yml, .json or .properties extension", f.Name)
			continue
		}
		var sch *jsonschema.Schema
		if f.Schema != nil {
			var err error
			if sch, err = CompileConfigSchema(f.Schema); err != nil {
				e.add(join(fp, "schema"), "%v", err)
			}
		}
		var data []byte
		switch {
		case f.Content != nil && f.ContentRef != "":
			e.add(fp, "set exactly one of content, contentRef")
			continue
		case f.Content != nil:
			data = []byte(*f.Content)
		case f.ContentRef != "":
			if !strings.HasPrefix(f.ContentRef, "/") {
				e.add(join(fp, "contentRef"), "%q is not an etcd key (it must start with /)", f.ContentRef)
				continue
			}
			b, ok := resolved[i]
			if !ok {
				continue // read and checked when the release is processed
			}
			data = b
		default:
			e.add(fp, "set content or contentRef")
			continue
		}
		field := join(fp, "content")
		if f.ContentRef != "" {
			field = join(fp, "contentRef")
		}
		total += len(data)
		if len(data) > MaxConfigFileBytes {
			e.add(field, "%d bytes, over the %d byte limit of one file", len(data), MaxConfigFileBytes)
			continue
		}
		if err := CheckConfigContent(format, data, sch); err != nil {
			e.add(field, "%v", err)
			continue
		}
		contents[f.Name] = string(data)
	}
	if total > MaxConfigBytes {
		e.add(join(p, "files"), "%d bytes together, over the %d byte limit", total, MaxConfigBytes)
	}
	c.validateOverlay(p, contents, e) // overlay.go
	for i := range c.Targets {
		c.Targets[i].validate(app, index(join(p, "targets"), i), c, names, contents, e)
	}
}
