package environments

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func parseYAML(t *testing.T, doc string) (Set, error) {
	t.Helper()
	var raw struct {
		Environments any    `yaml:"environments"`
		Default      string `yaml:"defaultEnvironment"`
	}
	if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	return Parse(raw.Environments, raw.Default)
}

func TestParseTheIssueExample(t *testing.T) {
	set, err := parseYAML(t, `
environments:
  - {name: dev,  source: {type: nacos, namespace: dev}}
  - {name: test, source: {type: nacos, namespace: test}, from: dev, soak: 10m, autoPromote: true}
  - {name: pre,  source: {type: apollo, env: UAT},       from: test, soak: 30m, approvals: 1}
  - {name: prod, source: {type: apollo, env: PRO},       from: pre, soak: 1h, approvals: 2, windows: ["Mon-Thu 10:00-16:00 Asia/Shanghai"], requireAnalysis: [pre]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), ","); got != "dev,test,pre,prod" || set.Default != "dev" {
		t.Fatalf("names %s default %s", got, set.Default)
	}
	prod, _ := set.Get("prod")
	if prod.Approvals != 2 || prod.Soak.Minutes() != 60 || len(prod.ParsedWindows()) != 1 || prod.SourceType() != "apollo" || prod.TTL().Hours() != 24 {
		t.Fatalf("prod parsed as %+v", prod)
	}
	if d := set.Downstream("test"); len(d) != 1 || d[0] != "pre" {
		t.Fatalf("downstream of test = %v", d)
	}
}

// Every error names its key path, and all are reported together.
func TestParseErrorsNameTheField(t *testing.T) {
	_, err := parseYAML(t, `
defaultEnvironment: staging
environments:
  - {name: dev, source: {type: consul}, soak: 5m}
  - {name: dev, from: qa}
  - {name: Prod, from: dev, windows: ["Mon 10-11"], requireAnalysis: [prod], approvals: -1, bogus: 1}
  - {name: pre, from: dev, legacyNames: true}
  - {name: p2, from: pre, legacyNames: true, requireAnalysis: [p2]}
`)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v is not ErrInvalid", err)
	}
	for _, want := range []string{
		`environments[0].source.type: "consul" is not a config centre`,
		`environments[0].soak: applies to promotions into dev, which needs from`,
		`environments[1].name: "dev" is declared twice`,
		`environments[1].from: "qa" is not an environment declared before dev`,
		`environments[2]: json: unknown field "bogus"`,
		`environments[4].legacyNames: only one environment can keep the legacy names (pre already does)`,
		`environments[4].requireAnalysis[0]: "p2" is not another declared environment`,
		`defaultEnvironment: "staging" is not a declared environment`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	_, err = parseYAML(t, `
environments:
  - {name: dev}
  - {name: Prod, from: dev, windows: ["Mon 10-11"], approvals: -1}
`)
	for _, want := range []string{`environments[1].name: "Prod" is not an environment name`, `environments[1].windows[0]:`, `environments[1].approvals: -1 is outside 0..20`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestDefaultEnvironment(t *testing.T) {
	set, err := parseYAML(t, "environments: [{name: dev}, {name: prod, from: dev, legacyNames: true}]")
	if err != nil || set.Default != "prod" {
		t.Fatalf("default %q (%v); want the legacyNames environment", set.Default, err)
	}
	set, err = parseYAML(t, "defaultEnvironment: dev\nenvironments: [{name: dev}, {name: prod, from: dev, legacyNames: true}]")
	if err != nil || set.Default != "dev" {
		t.Fatalf("default %q (%v); want the declared one", set.Default, err)
	}
	s := Single(map[string]any{"type": "etcd"})
	if s.Default != DefaultName || !s.Envs[0].LegacyNames {
		t.Fatalf("Single = %+v", s)
	}
}
