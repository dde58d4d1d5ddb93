package spec

import (
	"strings"
	"testing"
)

const configBase = `
app: shop
version: v2
backend: {type: process, process: {command: [shop]}}
`

const configExample = configBase + `
config:
  files:
    - name: application.yaml
      content: |
        greeting: hello from v2
        port: 8080
      schema:
        type: object
        required: [greeting, port]
        properties:
          greeting: {type: string}
          port: {type: integer, minimum: 1, maximum: 65535}
    - name: flags.properties
      content: |
        # feature flags
        checkout.new=true
        payment.retries = 3
      schema: {type: object, required: [checkout.new]}
    - name: limits.json
      contentRef: /graylane/config-src/shop/limits.json
  targets:
    - etcd: {key: "/config/{{.App}}/{{.File}}"}
    - nacos: {namespace: dev, group: SHOP, dataId: "{{.App}}-{{.File}}"}
    - apollo: {appId: shop, namespace: "{{.File}}"}
      files: [application.yaml, limits.json]
    - apollo: {appId: shop, namespace: application, key: "{{.File}}"}
      files: [flags.properties]
  onDrift: repair
`

func TestConfigExampleParses(t *testing.T) {
	rel, err := Parse([]byte(configExample))
	if err != nil {
		t.Fatal(err)
	}
	c := rel.Config
	if len(c.Files) != 3 || len(c.Targets) != 4 || c.DriftPolicy() != DriftRepair || !c.VerifiesInstances() {
		t.Fatalf("parsed %+v", c)
	}
	if got := c.Files[1].FileFormat(); got != FormatProperties {
		t.Fatalf("format of flags.properties = %q", got)
	}
	n, err := c.Targets[1].RenderNacos("shop", "application.yaml")
	if err != nil || n != (NacosConfigTarget{Namespace: "dev", Group: "SHOP", DataID: "shop-application.yaml"}) {
		t.Fatalf("nacos location %+v %v", n, err)
	}
	a, err := c.Targets[2].RenderApollo("shop", "application.yaml")
	if err != nil || a != (ApolloConfigTarget{AppID: "shop", Cluster: "default", Namespace: "application.yaml"}) {
		t.Fatalf("apollo location %+v %v", a, err)
	}
	// the referenced file is checked once its content is known
	err = c.ValidateFor("shop", map[int][]byte{2: []byte(`{"max": 1`)})
	if FieldOf(err) != "config.files[2].contentRef" || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("unparsable referenced file: %v (field %q)", err, FieldOf(err))
	}
	if err := c.ValidateFor("shop", map[int][]byte{2: []byte(`{"max": 1}`)}); err != nil {
		t.Fatalf("valid referenced file rejected: %v", err)
	}
}

func TestConfigRejections(t *testing.T) {
	file := func(body string) string {
		return configBase + "config:\n  targets: [{etcd: {key: \"/c/{{.File}}\"}}]\n  files:\n" + body
	}
	cases := []struct {
		name, doc, field, msg string
	}{
		{"no files", configBase + "config: {targets: [{etcd: {key: /c}}]}", "config.files", "is required"},
		{"no targets", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}]}", "config.targets", "is required"},
		{"unparsable yaml", file("    - name: app.yaml\n      content: \"a: [1, 2\"\n"), "config.files[0].content", "is not valid YAML"},
		{"duplicate yaml key", file("    - name: app.yaml\n      content: \"a: 1\\na: 2\\n\"\n"), "config.files[0].content", "already defined"},
		{"unparsable json", file("    - name: app.json\n      content: '{\"a\": 1,}'\n"), "config.files[0].content", "line 1 column"},
		{"bad properties escape", file("    - name: app.properties\n      content: 'a=\\u12'\n"), "config.files[0].content", "line 1"},
		{"schema mismatch", file("    - name: app.yaml\n      content: \"port: eighty\"\n      schema: {properties: {port: {type: integer}}}\n"), "config.files[0].content", "at /port"},
		{"schema required", file("    - name: app.yaml\n      content: \"other: 1\"\n      schema: {required: [port]}\n"), "config.files[0].content", "port"},
		{"invalid schema", file("    - name: app.yaml\n      content: \"a: 1\"\n      schema: {type: 12}\n"), "config.files[0].schema", "not a valid JSON Schema"},
		{"remote ref", file("    - name: app.yaml\n      content: \"a: 1\"\n      schema: {$ref: 'file:///etc/passwd'}\n"), "config.files[0].schema", "not loaded"},
		{"no format", file("    - name: app.conf\n      content: x\n"), "config.files[0].format", "is required"},
		{"bad format", file("    - name: app.conf\n      format: toml\n      content: x\n"), "config.files[0].format", "not yaml, json or properties"},
		{"both contents", file("    - name: a.yaml\n      content: 'a: 1'\n      contentRef: /x\n"), "config.files[0]", "exactly one"},
		{"no content", file("    - name: a.yaml\n"), "config.files[0]", "set content or contentRef"},
		{"bad name", file("    - name: ../a.yaml\n      content: 'a: 1'\n"), "config.files[0].name", "not a file name"},
		{"duplicate name", file("    - {name: a.yaml, content: 'a: 1'}\n    - {name: a.yaml, content: 'a: 2'}\n"), "config.files[1].name", "used twice"},
		{"too big", file("    - name: a.yaml\n      content: \"" + strings.Repeat("x", MaxConfigFileBytes+1) + "\"\n"), "config.files[0].content", "byte limit"},
		{"bad ref", file("    - name: a.yaml\n      contentRef: relative/key\n"), "config.files[0].contentRef", "etcd key"},
		{"on drift", configBase + "config: {onDrift: fix, files: [{name: a.yaml, content: 'a: 1'}], targets: [{etcd: {key: /c}}]}", "config.onDrift", "not report or repair"},
		{"two centres", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{etcd: {key: /c}, nacos: {dataId: c}}]}", "config.targets[0]", "exactly one"},
		{"same location", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}, {name: b.yaml, content: 'b: 1'}], targets: [{etcd: {key: /c}}]}", "config.targets[0].etcd", "same location"},
		{"etcd key relative", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{etcd: {key: 'c/{{.File}}'}}]}", "config.targets[0].etcd.key", "must start with /"},
		{"version template", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{etcd: {key: '/c/{{.Version}}/{{.File}}'}}]}", "config.targets[0].etcd.key", "graylane binds it"},
		{"nacos dataId", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{nacos: {dataId: 'a b'}}]}", "config.targets[0].nacos.dataId", "not a valid Nacos dataId"},
		{"apollo properties namespace", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{apollo: {namespace: application}}]}", "config.targets[0].apollo.namespace", "set apollo.key"},
		{"apollo format mismatch", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{apollo: {namespace: a.json}}]}", "config.targets[0].apollo.namespace", "is a json namespace"},
		{"apollo too long", configBase + "config: {files: [{name: a.yaml, content: 'a: " + strings.Repeat("x", MaxApolloValue) + "'}], targets: [{apollo: {namespace: a.yaml}}]}", "config.targets[0]", "item value limit"},
		{"unknown file in target", configBase + "config: {files: [{name: a.yaml, content: 'a: 1'}], targets: [{etcd: {key: '/c/{{.File}}'}, files: [b.yaml]}]}", "config.targets[0].files[0]", "not a file"},
		{"unknown field", configBase + "config: {files: [{name: a.yaml, content: 'a: 1', mode: 0600}], targets: [{etcd: {key: /c}}]}", "config.files[0].mode", "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			var found bool
			for _, fe := range err.(*ValidationError).Errors {
				if fe.Path == c.field && strings.Contains(fe.Msg, c.msg) {
					found = true
				}
			}
			if !found {
				t.Fatalf("error %q: want field %s containing %q", err, c.field, c.msg)
			}
		})
	}
}
