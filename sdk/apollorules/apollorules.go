package apollorules

import (
	"fmt"

	"github.com/graylane/graylane/configsync/apollo"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
)

var _ sdk.Rules = (*apollo.Source)(nil)

// Rules connects to the published gray documents in Apollo: cfg.Namespace
// defaults to gray.DefaultApolloNamespace (not the release namespace), the
// app and cluster to Apollo's defaults for graylane. It is read-only: leave
// cfg.Portal empty. It does not wait for Apollo (sdk.Client.Ready does);
// the caller closes the source.
func Rules(cfg apollo.Config) (*apollo.Source, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = gray.DefaultApolloNamespace
	}
	s, err := apollo.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("apollo gray rules in namespace %s: %w", cfg.Namespace, err)
	}
	return s, nil
}
