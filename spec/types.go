package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("30s", "10m",
// "1h30m") or as a whole number of seconds.
type Duration struct{ time.Duration }

// D is shorthand for building a Duration in code and tests.
func D(d time.Duration) *Duration { return &Duration{d} }

// MarshalJSON writes the duration as a string, e.g. "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// UnmarshalJSON accepts "30s" or 30.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 1h)", s)
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s is not a duration (use e.g. 30s, 5m, 1h)", b)
	}
	if n != math.Trunc(n) {
		return fmt.Errorf("%v is not a whole number of seconds", n)
	}
	d.Duration = time.Duration(n) * time.Second
	return nil
}

func (Duration) jsonKinds() []string { return []string{"string", "number"} }

// IntOrPercent is a count ("1") or a percentage of replicas ("25%"), as in
// Kubernetes' maxSurge and maxUnavailable.
type IntOrPercent struct {
	Value   int
	Percent bool
}

// Int returns an IntOrPercent holding a count.
func Int(n int) *IntOrPercent { return &IntOrPercent{Value: n} }

// Pct returns an IntOrPercent holding a percentage.
func Pct(n int) *IntOrPercent { return &IntOrPercent{Value: n, Percent: true} }

func (v IntOrPercent) String() string {
	if v.Percent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}

// MarshalJSON writes a count as a number and a percentage as "25%".
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	if v.Percent {
		return json.Marshal(v.String())
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON accepts 1, "1" or "25%".
func (v *IntOrPercent) UnmarshalJSON(b []byte) error {
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		if n != math.Trunc(n) {
			return fmt.Errorf("%v is not a whole number", n)
		}
		*v = IntOrPercent{Value: int(n)}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a number or a percentage", b)
	}
	pct := strings.HasSuffix(s, "%")
	n2, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil {
		return fmt.Errorf("%q is not a number or a percentage like \"25%%\"", s)
	}
	*v = IntOrPercent{Value: n2, Percent: pct}
	return nil
}

func (IntOrPercent) jsonKinds() []string { return []string{"string", "number"} }

// Scaled resolves the value against a total, rounding up (maxSurge) or down
// (maxUnavailable) as Kubernetes does. A nil value resolves to def.
func (v *IntOrPercent) Scaled(total int, roundUp bool, def int) int {
	if v == nil {
		return def
	}
	if !v.Percent {
		return v.Value
	}
	if roundUp {
		return (v.Value*total + 99) / 100
	}
	return v.Value * total / 100
}
