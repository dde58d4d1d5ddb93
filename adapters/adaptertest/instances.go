package adaptertest

import (
	"context"
	"slices"

	"github.com/graylane/graylane/adapters"
)

// Instances is a fixed instance source (app -> instances) for routers
// that follow a backend's Observe (the built-in proxy, nginx) in tests
// without a backend.
type Instances map[string][]adapters.Instance

// Observe returns app's instances.
func (s Instances) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Clone(s[app]), nil
}
