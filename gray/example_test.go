package gray_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// A user's bucket is fixed by the salt and the user key: the same in every
// service, for the life of the release.
func ExampleBucket() {
	b, ok := gray.Bucket("graylane", "user-1")
	fmt.Println(b, ok)
	_, ok = gray.Bucket("graylane", "  ")
	fmt.Println(ok)
	// Output:
	// 4109 true
	// false
}

// A release's rules, resolved against the split in force, decide requests.
func ExampleTable_Decide() {
	rel, _ := spec.Parse([]byte(`
app: shop
version: v2
backend: {type: registry}
gray:
  rules:
    - name: testers
      match: {headers: [{name: X-Tester, equals: "yes"}]}
      target: canary
`))
	doc := gray.Build(gray.BuildInput{Release: rel, Split: traffic.Split{Weights: []traffic.VersionWeight{
		{Version: "v2", Weight: 20}, {Version: "v1", Weight: 80},
	}}})
	table := gray.Compile(&doc, gray.Self{})
	for _, h := range []map[string]string{
		{"X-Tester": "yes"},
		{"X-Gray-User": "user-3"}, // bucket 1738: inside v2's 2000
		{"X-Gray-User": "user-1"}, // bucket 4109
	} {
		r := httptest.NewRequest("GET", "http://shop/", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		in := gray.Input{Req: r}
		d := table.Decide(&in)
		fmt.Println(d.Version, d.Reason)
	}
	// Output:
	// v2 rule
	// v2 split
	// v1 split
}
