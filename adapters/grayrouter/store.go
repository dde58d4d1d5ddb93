package grayrouter

import (
	"context"

	"github.com/graylane/graylane/configsync"
)

// DocumentsStore adapts a configsync.Documents (documents at arbitrary
// locations) to a Store, with loc naming app's location. This is how a
// centre whose gray location is not a Source (a single Nacos dataId a
// Spring gateway listens to, an Apollo namespace per app) is wired.
func DocumentsStore(docs configsync.Documents, loc func(app string) configsync.Location) Store {
	return &documentsStore{docs: docs, loc: loc}
}

type documentsStore struct {
	docs configsync.Documents
	loc  func(app string) configsync.Location
}

func (s *documentsStore) Get(ctx context.Context, app string) (configsync.Entry, error) {
	d, err := s.docs.Read(ctx, s.loc(app))
	if err != nil {
		return configsync.Entry{}, err
	}
	return configsync.Entry{App: app, Data: d.Data, Version: d.Version}, nil
}

func (s *documentsStore) Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error) {
	d, err := s.docs.Write(ctx, s.loc(app), data, expect)
	if err != nil {
		return configsync.Entry{}, err
	}
	return configsync.Entry{App: app, Data: d.Data, Version: d.Version}, nil
}

func (s *documentsStore) Delete(ctx context.Context, app string, expect string) error {
	return s.docs.Delete(ctx, s.loc(app), expect)
}
