package adapters

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

func TestCheckReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   traffic.Replicas
		want traffic.Replicas
		err  string // "" = valid; otherwise a part of the message
	}{
		{"nil", nil, traffic.Replicas{}, ""},
		{"zeros dropped", traffic.Replicas{"v1": 2, "v2": 0}, traffic.Replicas{"v1": 2}, ""},
		{"at the maximum", traffic.Replicas{"v1": spec.MaxReplicas}, traffic.Replicas{"v1": spec.MaxReplicas}, ""},
		{"negative", traffic.Replicas{"v1": -1}, nil, "version v1: -1 replicas is outside 0..1000"},
		{"above the maximum", traffic.Replicas{"v2": spec.MaxReplicas + 1}, nil, "version v2: 1001 replicas"},
		{"bad version", traffic.Replicas{"../x": 1}, nil, `version "../x"`},
		{"empty version", traffic.Replicas{"": 1}, nil, `version ""`},
	} {
		in := cloneReplicas(tc.in)
		got, err := CheckReplicas("demo", tc.in)
		if !reflect.DeepEqual(tc.in, in) {
			t.Errorf("%s: CheckReplicas changed its argument: %v, was %v", tc.name, tc.in, in)
		}
		if tc.err == "" {
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: CheckReplicas = %v, %v; want %v", tc.name, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, spec.ErrInvalid) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "app demo") {
			t.Errorf("%s: CheckReplicas error = %v, want spec.ErrInvalid naming app demo and %q", tc.name, err, tc.err)
		}
	}
	// the result is a copy
	in := traffic.Replicas{"v1": 1}
	out, _ := CheckReplicas("demo", in)
	out["v1"] = 5
	if in["v1"] != 1 {
		t.Error("CheckReplicas returned the caller's map")
	}
}

func cloneReplicas(r traffic.Replicas) traffic.Replicas {
	if r == nil {
		return nil
	}
	out := traffic.Replicas{}
	for k, v := range r {
		out[k] = v
	}
	return out
}
