package spec

import (
	"errors"
	"strings"
	"testing"
)

// Blue-green needs something that switches traffic; where nothing does,
// the spec is refused naming strategy.type (issue 13), for every backend
// kind. The same release with a router is accepted.
func TestBlueGreenNeedsATrafficSwitch(t *testing.T) {
	const head = "app: demo\nversion: v1\nreplicas: 2\nstrategy: {type: bluegreen}\n"
	backends := map[string]string{
		"process":                   "backend: {type: process, process: {command: [demoapp]}}\n",
		"ssh":                       "backend: {type: ssh, ssh: {user: deploy, root: /srv/demo, appPort: 8080, artifact: '/a/{{.Version}}.tgz', restart: [systemctl, restart, demo], hosts: [{address: 10.0.0.1}]}}\n",
		"kubernetes":                "backend: {type: kubernetes, kubernetes: {image: 'r/demo:{{.Version}}'}}\n",
		"kubernetes with a Service": "backend: {type: kubernetes, kubernetes: {image: 'r/demo:{{.Version}}', service: {port: 80}}}\n",
		"webhook":                   "backend: {type: webhook, webhook: {url: 'http://deploy.example/deploy', statusURL: 'http://deploy.example/status'}}\n",
		"registry":                  "backend: {type: registry}\n",
	}
	for _, tc := range []struct {
		backend, traffic string
		refused          string // "" = accepted; else a word the error names
	}{
		{"process", "", ""},
		{"process", "traffic: {type: none}\n", "traffic.type is none"},
		{"ssh", "", "backend ssh"},
		{"ssh", "traffic: {type: nginx}\n", ""},
		{"kubernetes", "", "backend.kubernetes.service"},
		{"kubernetes", "traffic: {type: nginx}\n", ""},
		{"kubernetes with a Service", "", ""},
		{"kubernetes with a Service", "traffic: {type: none}\n", "traffic.type is none"},
		{"webhook", "", "backend webhook"},
		{"webhook", "traffic: {type: nginx}\n", ""},
		{"registry", "", ""},
		{"registry", "traffic: {type: none}\n", "traffic.type is none"},
	} {
		name := tc.backend + "/" + strings.TrimSpace(strings.TrimPrefix(tc.traffic, "traffic: "))
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(head + backends[tc.backend] + tc.traffic))
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			if len(verr.Errors) != 1 || verr.Errors[0].Path != "strategy.type" || !strings.Contains(verr.Errors[0].Msg, tc.refused) {
				t.Fatalf("errors = %+v, want one at strategy.type naming %q", verr.Errors, tc.refused)
			}
		})
	}
	// canary and rolling stay allowed without a router
	for _, s := range []string{"canary, steps: [{setWeight: 50}]", "rolling"} {
		y := "app: demo\nversion: v1\nstrategy: {type: " + s + "}\n" + backends["webhook"]
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("%s on webhook refused: %v", s, err)
		}
	}
}
