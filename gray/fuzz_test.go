package gray

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/graylane/graylane/spec"
)

func newReq(h map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://shop/?a=1", nil)
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r
}

// FuzzParse: the parser of published documents (which people may edit by
// hand in a console) never panics; a rejected object names the field; an
// accepted document compiles and decides without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schema":"graylane.gray/v1","app":"shop","generation":1,"userKey":{"header":"X-Gray-User"},"bucketing":{"hash":"fnv1a64-fmix64","salt":"graylane","buckets":10000},"rules":[{"match":{"headers":[{"name":"X-T","regex":"a|b"}],"percent":12.5},"version":"v2"}],"split":[{"version":"v2","weight":10},{"version":"v1","weight":90}]}`))
	f.Add([]byte(`{"schema":"graylane.gray/v1","rules":[{"match":{"clientIPs":["::1","10.0.0.0/8"],"labels":{"a":"b"}},"version":"v1"}]}`))
	f.Add([]byte(`{"rules":[{"match":{"headers":[{"name":"x","equals":null}]}}]}`))
	f.Add([]byte(`{"rules":"x"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"split":[{"version":"v1","weight":1e300}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			var verr *spec.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is not a *spec.ValidationError: %v", err)
			}
			var obj map[string]any
			if json.Unmarshal(data, &obj) == nil {
				for _, fe := range verr.Errors {
					if fe.Path == "" {
						t.Fatalf("a rejected JSON object has an error without a field path: %v", fe)
					}
				}
			}
			return
		}
		tab := Compile(d, Self{Region: "r", Zone: "z"})
		in := Input{Req: newReq(map[string]string{"X-Gray-User": "u", "X-T": "a"})}
		res := tab.Decide(&in)
		if res.Version != "" && !tab.Routes(res.Version) {
			t.Fatalf("decided %q, which the document does not route to (%v)", res.Version, d.Versions())
		}
	})
}
