package spec

import (
	"strings"
	"testing"
)

func TestHooksValidation(t *testing.T) {
	base := `app: shop
version: v1
backend: {type: registry}
hooks:
`
	rel, err := Parse([]byte(base + `  preRelease: [{name: migrate, command: ["./migrate", "--to={{.Version}}", "--env={{.Env}}"], timeout: 10m}]
  confirmPromotion: [{name: ticket, http: {url: "https://cm.example/check?app={{.App}}&bundle={{.Bundle}}"}}]
  postRelease: [{name: tell, http: {url: "http://qa.example/released", method: PUT, headers: {X-Team: "{{.App}}"}}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := rel.Hooks.PreRelease[0].Render(HookData{App: "shop", Env: "prod", Version: "v2"})
	if err != nil || strings.Join(r.Command, " ") != "./migrate --to=v2 --env=prod" || rel.Hooks.PreRelease[0].EffectiveTimeout().Minutes() != 10 {
		t.Fatalf("rendered %v (%v)", r.Command, err)
	}
	for _, tc := range []struct{ hooks, field string }{
		{`  preRelease: [{name: m}, {name: m, command: [x]}]`, "hooks.preRelease[0]"},
		{`  preRelease: [{name: m, command: [x]}, {name: m, command: [x]}]`, "hooks.preRelease[1].name"},
		{`  confirmPromotion: [{name: c, http: {url: "ftp://x"}}]`, "hooks.confirmPromotion[0].http.url"},
		{`  confirmPromotion: [{name: c, http: {url: "http://x/{{.Nope}}"}}]`, "hooks.confirmPromotion[0]"},
		{`  postRelease: [{name: p, command: [x], http: {url: "http://x"}}]`, "hooks.postRelease[0]"},
		{`  postRelease: [{name: p, command: [x], timeout: 3h}]`, "hooks.postRelease[0].timeout"},
		{`  postRelease: [{name: p, command: [x], env: {GRAYLANE_HTTP_TOKEN: x}}]`, "hooks.postRelease[0].env"},
		{`  preRelease: [{name: Bad_Name, command: [x]}]`, "hooks.preRelease[0].name"},
	} {
		_, err := Parse([]byte(base + tc.hooks + "\n"))
		if err == nil || FieldOf(err) != tc.field {
			t.Errorf("%s: err %v (field %q), want field %s", tc.hooks, err, FieldOf(err), tc.field)
		}
	}
}
