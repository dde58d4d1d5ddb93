package main

import (
	"errors"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
)

func TestGrayWiringRules(t *testing.T) {
	cases := []struct {
		name, doc string
		traffic   string
		rulesOK   bool
	}{
		{"registry backend defaults to the gray router", "app: a\nversion: v1\nbackend: {type: registry}\n", "gray", true},
		{"registry with rules", "app: a\nversion: v1\nbackend: {type: registry}\ngray: {rules: [{match: {}, version: v1}]}\n", "gray", true},
		{"explicit gray on another backend", "app: a\nversion: v1\nbackend: {type: process, process: {command: [x]}}\ntraffic: {type: gray}\ngray: {rules: [{match: {}, version: v1}]}\n", "gray", true},
		{"rules with the proxy router are refused", "app: a\nversion: v1\nbackend: {type: process, process: {command: [x]}}\ngray: {rules: [{match: {}, version: v1}]}\n", "", false},
		{"rules with traffic none are refused", "app: a\nversion: v1\nbackend: {type: registry}\ntraffic: {type: none}\ngray: {rules: [{match: {}, version: v1}]}\n", "none", false},
		{"a salt alone needs no router", "app: a\nversion: v1\nbackend: {type: process, process: {command: [x]}}\ngray: {salt: s}\n", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rel, err := spec.Parse([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := grayTraffic(rel); got != c.traffic {
				t.Fatalf("grayTraffic = %q, want %q", got, c.traffic)
			}
			err = grayCheck(rel)
			if c.rulesOK != (err == nil) || (err != nil && !errors.Is(err, adapters.ErrUnsupported)) {
				t.Fatalf("grayCheck = %v, want ok %v (ErrUnsupported otherwise)", err, c.rulesOK)
			}
		})
	}
}
