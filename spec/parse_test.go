package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const base = `
app: demo
version: v2
replicas: 4
strategy:
  type: canary
  maxSurge: 1
  maxUnavailable: 0
  steps:
    - setWeight: 25
    - pause: {duration: 5s}
    - setWeight: 50
    - pause: {}
    - setWeight: 100
  progressDeadline: 10m
  autoRollback: true
  scaleDownDelay: 30s
backend:
  type: process
  process:
    command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"]
    proxy: 127.0.0.1:8081
health:
  path: /healthz
  interval: 1s
  timeout: 1s
`

func TestParseTheIssueExample(t *testing.T) {
	r, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if r.App != "demo" || r.Version != "v2" || r.ReplicaCount() != 4 || r.Strategy.Type != Canary {
		t.Fatalf("parsed %+v", r)
	}
	if got := r.Strategy.Weights(); len(got) != 3 || got[2] != 100 {
		t.Fatalf("weights %v", got)
	}
	if r.Strategy.Steps[1].Pause.Duration.Duration != 5*time.Second || r.Strategy.Steps[3].Pause.Duration != nil {
		t.Fatal("pause durations")
	}
	if r.Strategy.MaxSurge.Scaled(4, true, 0) != 1 || r.Strategy.EffectiveScaleDownDelay() != 30*time.Second {
		t.Fatal("surge/delay")
	}
	// JSON is accepted too, and a spec round-trips through JSON.
	r2, err := Parse([]byte(`{"app":"demo","version":"v1","backend":{"type":"process","process":{"command":["x"]}}}`))
	if err != nil || r2.Strategy.Type != Rolling || r2.ReplicaCount() != 1 {
		t.Fatalf("json: %+v %v", r2, err)
	}
	if c := r.Clone(); c.Hash() != r.Hash() || c == r {
		t.Fatal("clone")
	}
}

func TestParseRejectsWithFieldPath(t *testing.T) {
	for _, c := range []struct {
		name, from, to string
		field, msg     string
	}{
		{"weight over 100", "setWeight: 50", "setWeight: 150", "strategy.steps[2].setWeight", "150 is over 100"},
		{"negative weight", "setWeight: 25", "setWeight: -5", "strategy.steps[0].setWeight", "-5 is below 0"},
		{"non-monotonic weight", "setWeight: 100", "setWeight: 20", "strategy.steps[4].setWeight", "20 is below the 50 of steps[2]"},
		{"fractional weight", "setWeight: 25", "setWeight: 25.5", "strategy.steps[0].setWeight", "not a whole number"},
		{"string weight", "setWeight: 25", "setWeight: lots", "strategy.steps[0].setWeight", "want a whole number"},
		{"unknown field", "autoRollback: true", "autoRollback: true\n  autoRollbak: true", "strategy.autoRollbak", "unknown field"},
		{"unknown top field", "replicas: 4", "replicas: 4\ncolour: blue", "colour", "unknown field"},
		{"unknown step field", "- pause: {}", "- pause: {}\n      note: hi", "strategy.steps[3].note", "unknown field"},
		{"two actions in a step", "- pause: {}", "- {pause: {}, setWeight: 60}", "strategy.steps[3]", "exactly one"},
		{"bad duration", "duration: 5s", "duration: 5 seconds", "strategy.steps[1].pause.duration", "not a duration"},
		{"bad deadline", "progressDeadline: 10m", "progressDeadline: soon", "strategy.progressDeadline", "not a duration"},
		{"zero deadline", "progressDeadline: 10m", "progressDeadline: 0s", "strategy.progressDeadline", "must be positive"},
		{"shell in version", "version: v2", "version: 'v2; rm -rf /'", "version", `contains ';'`},
		{"backtick in version", "version: v2", "version: 'v2`id`'", "version", "contains '`'"},
		{"space in version", "version: v2", "version: 'v 2'", "version", "contains ' '"},
		{"long version", "version: v2", "version: " + strings.Repeat("a", 129), "version", "over 128"},
		{"empty version", "version: v2", "version: ''", "version", "is required"},
		{"bad app", "app: demo", "app: Demo_App", "app", "not a valid app name"},
		{"zero replicas", "replicas: 4", "replicas: 0", "replicas", "outside 1..1000"},
		{"surge percent over 100", "maxSurge: 1", "maxSurge: '150%'", "strategy.maxSurge", "over 100%"},
		{"surge garbage", "maxSurge: 1", "maxSurge: lots", "strategy.maxSurge", "not a number or a percentage"},
		{"bad strategy", "type: canary", "type: yolo", "strategy.type", "not a strategy"},
		{"steps on rolling", "type: canary", "type: rolling", "strategy.steps", "only a canary has steps"},
		{"bad backend", "type: process", "type: mainframe", "backend.type", "not a backend type"},
		{"missing command", `command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"]`, `command: []`, "backend.process.command", "is required"},
		{"bad template", `"--addr={{.Addr}}"`, `"--addr={{.Adr}}"`, "backend.process.command[2]", "Adr"},
		{"bad proxy", "proxy: 127.0.0.1:8081", "proxy: nowhere", "backend.process.proxy", "not host:port"},
		{"health path", "path: /healthz", "path: healthz", "health.path", "must start with /"},
		{"list for map", "health:", "health: [1]\nx:", "health", "want a mapping"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(base, c.from, c.to, 1)
			if doc == base {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatal("not a ValidationError")
			}
			found := false
			for _, fe := range verr.Errors {
				if fe.Path == c.field && strings.Contains(fe.Msg, c.msg) {
					found = true
				}
			}
			if !found {
				t.Fatalf("want %s: ...%s..., got %v", c.field, c.msg, err)
			}
		})
	}
}

func TestParseRejectsNonSpecs(t *testing.T) {
	for _, doc := range []string{"", "   ", "- a\n- b", "just a string", "{", strings.Repeat("x", MaxSpecBytes+1)} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%.20q) = %v, want ErrInvalid", doc, err)
		}
	}
}

func TestIntOrPercentScaled(t *testing.T) {
	for _, c := range []struct {
		v     *IntOrPercent
		total int
		up    bool
		want  int
	}{
		{Pct(25), 4, true, 1}, {Pct(25), 5, true, 2}, {Pct(25), 5, false, 1}, {Pct(25), 3, false, 0},
		{Int(2), 10, true, 2}, {nil, 10, true, 7}, {Pct(100), 7, false, 7},
	} {
		if got := c.v.Scaled(c.total, c.up, 7); got != c.want {
			t.Errorf("%v.Scaled(%d, %v) = %d, want %d", c.v, c.total, c.up, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(`{"app":"a","version":"v1","backend":{"type":"process","process":{"command":["x"]}}}`))
	f.Add([]byte("app: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is not a ValidationError: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed spec does not validate: %v", err)
		}
		if CheckVersion(r.Version) != nil {
			t.Fatalf("accepted bad version %q", r.Version)
		}
	})
}

func TestCodeVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1": "v1", "v1_cfg0a1b2c3d": "v1", "2.4.1_cfgdeadbeef": "2.4.1",
		"v1_cfg0A1B2C3D": "v1_cfg0A1B2C3D", "v1_cfg123": "v1_cfg123", "_cfg0a1b2c3d": "_cfg0a1b2c3d",
		"a_cfg00000000_cfg11111111": "a_cfg00000000",
	} {
		if got := CodeVersion(in); got != want {
			t.Errorf("CodeVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
