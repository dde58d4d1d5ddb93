// Config targets: where the app's services read their files (etcd, Nacos,
// Apollo), their templates, validation and rendering.

package spec

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf16"
)

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
