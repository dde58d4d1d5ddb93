package adapters

import (
	"fmt"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// CheckReplicas checks the desired replicas an Apply of app received and
// returns them without the versions wanted at zero (a copy: the caller's
// map is not kept). A version name that is not a valid version, or a count
// outside 0..spec.MaxReplicas, is an error wrapping spec.ErrInvalid that
// names the app and the version; backends reject such an Apply and change
// nothing.
func CheckReplicas(app string, want traffic.Replicas) (traffic.Replicas, error) {
	out := traffic.Replicas{}
	for v, n := range want {
		if err := spec.CheckVersion(v); err != nil {
			return nil, fmt.Errorf("apply app %s: version %q %v: %w", app, v, err, spec.ErrInvalid)
		}
		if n < 0 || n > spec.MaxReplicas {
			return nil, fmt.Errorf("apply app %s: version %s: %d replicas is outside 0..%d: %w", app, v, n, spec.MaxReplicas, spec.ErrInvalid)
		}
		if n > 0 {
			out[v] = n
		}
	}
	return out, nil
}
