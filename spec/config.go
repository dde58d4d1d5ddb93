package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"
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

// ConfigTarget is one place the app's services read the files from.
// Exactly one of Etcd, Nacos and Apollo is set. Its strings are templates
// with {{.App}}, {{.File}} (the file name), {{.Base}} (the name without
// its extension) and {{.Ext}} (the extension without the dot). The
// version is not a template variable: graylane binds it (docs/config.md).
type ConfigTarget struct {
	// Files limits the target to these files (default: all).
	Files []string `json:"files,omitempty"`
	// Etcd is a key in graylane's etcd cluster.
	Etcd *EtcdConfigTarget `json:"etcd,omitempty"`
	// Nacos is a dataId in the Nacos cluster graylane is configured with.
	Nacos *NacosConfigTarget `json:"nacos,omitempty"`
	// Apollo is a namespace (or an item of one) in the Apollo portal
	// graylane is configured with.
	Apollo *ApolloConfigTarget `json:"apollo,omitempty"`
}

// EtcdConfigTarget locates a file in etcd.
type EtcdConfigTarget struct {
	// Key starts with /, e.g. /config/{{.App}}/{{.File}}.
	Key string `json:"key"`
}

// NacosConfigTarget locates a file in Nacos.
type NacosConfigTarget struct {
	// Namespace is the namespace ID ("" is public).
	Namespace string `json:"namespace,omitempty"`
	// Group defaults to DEFAULT_GROUP.
	Group string `json:"group,omitempty"`
	// DataID, e.g. {{.App}}-{{.File}}.
	DataID string `json:"dataId"`
}

// ApolloConfigTarget locates a file in Apollo.
type ApolloConfigTarget struct {
	// AppID is the Apollo app (default {{.App}}).
	AppID string `json:"appId,omitempty"`
	// Cluster defaults to "default".
	Cluster string `json:"cluster,omitempty"`
	// Namespace, e.g. {{.File}} for a yaml/json namespace named after the
	// file (it must exist in Apollo, with the file's format).
	Namespace string `json:"namespace"`
	// Key, if set, is the item of a properties namespace that holds the
	// whole file. Empty: the file is the namespace's content (a yaml, yml
	// or json namespace).
	Key string `json:"key,omitempty"`
}

// Centre names the target's config centre: etcd, nacos or apollo.
func (t *ConfigTarget) Centre() string {
	switch {
	case t.Etcd != nil:
		return "etcd"
	case t.Nacos != nil:
		return "nacos"
	case t.Apollo != nil:
		return "apollo"
	}
	return ""
}

// Applies reports whether the target carries the named file.
func (t *ConfigTarget) Applies(file string) bool {
	if len(t.Files) == 0 {
		return true
	}
	for _, f := range t.Files {
		if f == file {
			return true
		}
	}
	return false
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

// ConfigTemplateData is what target templates see.
type ConfigTemplateData struct {
	App, File, Base, Ext string
}

// NewConfigTemplateData returns the template data for one file of app.
func NewConfigTemplateData(app, file string) ConfigTemplateData {
	ext := path.Ext(file)
	return ConfigTemplateData{App: app, File: file, Base: strings.TrimSuffix(file, ext), Ext: strings.TrimPrefix(ext, ".")}
}

// RenderConfigTarget renders one target template for one file.
func RenderConfigTarget(s string, data ConfigTemplateData) (string, error) {
	out, err := renderTemplate(s, data)
	if err != nil {
		if strings.Contains(err.Error(), "Version") {
			return "", fmt.Errorf("%v (the version is not a template variable: graylane binds it to the location itself, see docs/config.md)", err)
		}
		return "", err
	}
	return out, nil
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

func (t *ConfigTarget) validate(app, p string, c *Config, names map[string]bool, contents map[string]string, e *errs) {
	n := 0
	for _, set := range []bool{t.Etcd != nil, t.Nacos != nil, t.Apollo != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		e.add(p, "set exactly one of etcd, nacos, apollo")
		return
	}
	for j, f := range t.Files {
		if !names[f] {
			e.add(index(join(p, "files"), j), "%q is not a file of config.files", f)
		}
	}
	seen := map[string]string{}
	for _, f := range c.Files {
		if !t.Applies(f.Name) || !ConfigFileNamePattern.MatchString(f.Name) {
			continue
		}
		data := NewConfigTemplateData(app, f.Name)
		loc, field, err := t.render(data)
		if err != nil {
			e.add(join(p, field), "%v", err)
			return
		}
		if other, dup := seen[loc]; dup {
			e.add(join(p, t.Centre()), "files %s and %s render to the same location %s: put {{.File}} in it", other, f.Name, loc)
			return
		}
		seen[loc] = f.Name
		format := f.FileFormat()
		switch {
		case t.Etcd != nil:
			if !strings.HasPrefix(t.Etcd.Key, "/") || strings.ContainsAny(t.Etcd.Key, "@\x00") {
				e.add(join(p, "etcd.key"), "%q must start with / and may not contain @ (it marks version-bound copies)", t.Etcd.Key)
				return
			}
		case t.Nacos != nil:
			r, _ := t.renderNacos(data)
			for _, x := range []struct{ field, v string }{{"namespace", r.Namespace}, {"group", r.Group}, {"dataId", r.DataID}} {
				if x.v == "" && x.field != "dataId" {
					continue
				}
				if !nacosNamePattern.MatchString(x.v) {
					e.add(join(p, "nacos."+x.field), "%q is not a valid Nacos %s (letters, digits, '_', '-', '.', ':')", x.v, x.field)
					return
				}
			}
		case t.Apollo != nil:
			r, _ := t.renderApollo(data)
			for _, x := range []struct{ field, v string }{{"appId", r.AppID}, {"cluster", r.Cluster}, {"namespace", r.Namespace}} {
				if !apolloNamePattern.MatchString(x.v) {
					e.add(join(p, "apollo."+x.field), "%q is not a valid Apollo %s (letters, digits, '_', '-', '.')", x.v, x.field)
					return
				}
			}
			nsFormat := FormatOfName(r.Namespace)
			if r.Key == "" {
				switch {
				case nsFormat == "" || nsFormat == FormatProperties:
					e.add(join(p, "apollo.namespace"), "%q is a properties namespace: set apollo.key (the item holding %s), or use a yaml/json namespace named like the file", r.Namespace, f.Name)
					return
				case nsFormat != format:
					e.add(join(p, "apollo.namespace"), "%q is a %s namespace but %s is %s", r.Namespace, nsFormat, f.Name, format)
					return
				}
			} else if nsFormat != "" && nsFormat != FormatProperties {
				e.add(join(p, "apollo.key"), "only a properties namespace has items; %q is %s (drop the key to use its content)", r.Namespace, nsFormat)
				return
			}
			if content, ok := contents[f.Name]; ok {
				if n := len(utf16.Encode([]rune(content))); n > MaxApolloValue {
					e.add(p, "file %s is %d characters, over Apollo's item value limit of %d", f.Name, n, MaxApolloValue)
					return
				}
			}
		}
	}
}

// render renders the target for one file and returns its canonical form
// (for duplicate detection) and the field that failed.
func (t *ConfigTarget) render(data ConfigTemplateData) (string, string, error) {
	switch {
	case t.Etcd != nil:
		k, err := RenderConfigTarget(t.Etcd.Key, data)
		if err != nil {
			return "", "etcd.key", err
		}
		return k, "", nil
	case t.Nacos != nil:
		r, err := t.renderNacos(data)
		if err != nil {
			return "", "nacos", err
		}
		return r.Namespace + "/" + r.Group + "/" + r.DataID, "", nil
	case t.Apollo != nil:
		r, err := t.renderApollo(data)
		if err != nil {
			return "", "apollo", err
		}
		return r.AppID + "/" + r.Cluster + "/" + r.Namespace + "/" + r.Key, "", nil
	}
	return "", "", errors.New("no centre")
}

func (t *ConfigTarget) renderNacos(data ConfigTemplateData) (NacosConfigTarget, error) {
	var out NacosConfigTarget
	var err error
	if out.Namespace, err = RenderConfigTarget(t.Nacos.Namespace, data); err != nil {
		return out, fmt.Errorf("namespace: %w", err)
	}
	if out.Group, err = RenderConfigTarget(t.Nacos.Group, data); err != nil {
		return out, fmt.Errorf("group: %w", err)
	}
	if out.Group == "" {
		out.Group = "DEFAULT_GROUP"
	}
	if out.DataID, err = RenderConfigTarget(t.Nacos.DataID, data); err != nil {
		return out, fmt.Errorf("dataId: %w", err)
	}
	return out, nil
}

func (t *ConfigTarget) renderApollo(data ConfigTemplateData) (ApolloConfigTarget, error) {
	var out ApolloConfigTarget
	var err error
	appID := t.Apollo.AppID
	if appID == "" {
		appID = "{{.App}}"
	}
	if out.AppID, err = RenderConfigTarget(appID, data); err != nil {
		return out, fmt.Errorf("appId: %w", err)
	}
	if out.Cluster, err = RenderConfigTarget(t.Apollo.Cluster, data); err != nil {
		return out, fmt.Errorf("cluster: %w", err)
	}
	if out.Cluster == "" {
		out.Cluster = "default"
	}
	if out.Namespace, err = RenderConfigTarget(t.Apollo.Namespace, data); err != nil {
		return out, fmt.Errorf("namespace: %w", err)
	}
	if out.Key, err = RenderConfigTarget(t.Apollo.Key, data); err != nil {
		return out, fmt.Errorf("key: %w", err)
	}
	return out, nil
}

// RenderEtcd returns the etcd key of one file.
func (t *ConfigTarget) RenderEtcd(app, file string) (string, error) {
	return RenderConfigTarget(t.Etcd.Key, NewConfigTemplateData(app, file))
}

// RenderNacos returns the Nacos location of one file (defaults applied).
func (t *ConfigTarget) RenderNacos(app, file string) (NacosConfigTarget, error) {
	return t.renderNacos(NewConfigTemplateData(app, file))
}

// RenderApollo returns the Apollo location of one file (defaults applied).
func (t *ConfigTarget) RenderApollo(app, file string) (ApolloConfigTarget, error) {
	return t.renderApollo(NewConfigTemplateData(app, file))
}

// denyLoader refuses every URL: schemas are self-contained, a $ref may not
// make graylane read files or the network.
type denyLoader struct{}

func (denyLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("remote $ref %s is not loaded: config schemas must be self-contained", url)
}

// CompileConfigSchema compiles a JSON Schema given as a decoded YAML/JSON
// value, with github.com/santhosh-tekuri/jsonschema/v6. Format keywords
// are asserted; remote references are refused.
func CompileConfigSchema(schema any) (*jsonschema.Schema, error) {
	doc, err := toJSONValue(schema)
	if err != nil {
		return nil, fmt.Errorf("not a JSON Schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(denyLoader{})
	c.AssertFormat()
	const url = "mem:///graylane/config-schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("not a JSON Schema: %v", err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("not a valid JSON Schema: %s", oneLine(err.Error()))
	}
	return sch, nil
}

// toJSONValue converts a decoded value to the form jsonschema expects
// (numbers as json.Number).
func toJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// CheckConfigContent parses data in its format and, if sch is set, checks
// it against the schema. The error names the line (parse errors) or the
// JSON pointer inside the document (schema errors).
func CheckConfigContent(format string, data []byte, sch *jsonschema.Schema) error {
	if !utf8.Valid(data) {
		return errors.New("is not valid UTF-8")
	}
	v, err := ParseConfigContent(format, data)
	if err != nil {
		return err
	}
	if sch == nil {
		return nil
	}
	doc, err := toJSONValue(v)
	if err != nil {
		return fmt.Errorf("cannot be checked against the schema: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		var verr *jsonschema.ValidationError
		if errors.As(err, &verr) {
			return fmt.Errorf("does not match the schema: %s", schemaLeaves(verr))
		}
		return fmt.Errorf("does not match the schema: %s", oneLine(err.Error()))
	}
	return nil
}

var schemaPrinter = message.NewPrinter(language.English)

// schemaLeaves lists the innermost schema errors as "at /a/b: message".
func schemaLeaves(e *jsonschema.ValidationError) string {
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			ptr := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", ptr, e.ErrorKind.LocalizedString(schemaPrinter)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(e)
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ParseConfigContent parses a config file. yaml and json give the decoded
// document; properties gives a map of keys to string values.
func ParseConfigContent(format string, data []byte) (any, error) {
	switch format {
	case FormatYAML:
		var n any // yaml.v3 into a value: catches duplicate keys with their lines
		if err := yaml.Unmarshal(data, &n); err != nil {
			return nil, fmt.Errorf("is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		var v any
		js, err := k8syaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("is not valid YAML: %v", err)
		}
		if err := json.Unmarshal(js, &v); err != nil {
			return nil, fmt.Errorf("is not valid YAML: %v", err)
		}
		return v, nil
	case FormatJSON:
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("is not valid JSON: %s", jsonErr(data, err))
		}
		if dec.More() {
			return nil, errors.New("is not valid JSON: more than one value")
		}
		return v, nil
	case FormatProperties:
		p, err := ParseProperties(data)
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(p.Keys))
		for k, v := range p.Values {
			m[k] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

func jsonErr(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, int(se.Offset))
		return fmt.Sprintf("line %d column %d: %v", line, col, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		line, _ := lineCol(data, len(data))
		return fmt.Sprintf("line %d: unexpected end of the document", line)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		line, col := lineCol(data, int(te.Offset))
		return fmt.Sprintf("line %d column %d: %v", line, col, te)
	}
	return err.Error()
}

func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// Properties is a parsed Java properties file.
type Properties struct {
	// Keys in order of first appearance.
	Keys []string
	// Values by key (a repeated key keeps its last value, as in Java).
	Values map[string]string
}

// ParseProperties parses a Java properties file (java.util.Properties.load
// rules: # and ! comments, = : or whitespace separators, backslash line
// continuations and escapes including \uXXXX).
func ParseProperties(data []byte) (Properties, error) {
	p := Properties{Values: map[string]string{}}
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// join continuation lines (an odd number of trailing backslashes)
		for trailingBackslashes(line)%2 == 1 {
			line = line[:len(line)-1]
			if i+1 >= len(lines) {
				break
			}
			i++
			line += strings.TrimLeft(lines[i], " \t\f")
		}
		key, value, err := splitProperty(line)
		if err != nil {
			return p, fmt.Errorf("line %d: %v", start, err)
		}
		if _, ok := p.Values[key]; !ok {
			p.Keys = append(p.Keys, key)
		}
		p.Values[key] = value
	}
	return p, nil
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

func splitProperty(line string) (string, string, error) {
	end := len(line)
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			end = i
			break
		}
	}
	rawKey := line[:end]
	rest := strings.TrimLeft(line[end:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	key, err := unescapeProperty(rawKey)
	if err != nil {
		return "", "", fmt.Errorf("key %q: %v", rawKey, err)
	}
	value, err := unescapeProperty(rest)
	if err != nil {
		return "", "", fmt.Errorf("value of %q: %v", key, err)
	}
	return key, value, nil
}

func unescapeProperty(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", fmt.Errorf("malformed \\uxxxx escape")
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				return "", fmt.Errorf("malformed \\uxxxx escape %q", s[i-1:i+5])
			}
			r := rune(n)
			// a surrogate pair is two escapes
			if utf16.IsSurrogate(r) && i+11 <= len(s) && strings.HasPrefix(s[i+5:], `\u`) {
				if m, err := strconv.ParseUint(s[i+7:i+11], 16, 16); err == nil {
					if d := utf16.DecodeRune(r, rune(m)); d != utf8.RuneError {
						b.WriteRune(d)
						i += 10
						continue
					}
				}
			}
			b.WriteRune(r)
			i += 4
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// CanonicalProperties renders properties in a canonical form: sorted
// "key=value" lines with Java's escapes, so that the same set of properties
// has the same bytes (and checksum) however it was written or stored.
func CanonicalProperties(values map[string]string) []byte {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(escapeProperty(k, true))
		b.WriteByte('=')
		b.WriteString(escapeProperty(values[k], false))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func escapeProperty(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && (key || i == 0):
			b.WriteString(`\ `)
		case key && (r == '=' || r == ':'), (r == '#' || r == '!') && i == 0:
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
