// Package config loads a Go service's config files the way graylane
// releases them (config-in-step, see docs/config.md): the instance reads
// the copy bound to its release identity when there is one, else the
// stable file; it reloads when either changes; and it reports the checksum
// of what it loaded so that graylane moves traffic to it only once it runs
// with the right config.
//
// Entry point: New(ctx, Config) returns a *Loader.
//
//	l, err := config.New(ctx, config.Config{
//		App:      "shop",
//		Identity: version,                  // what graylane started it with: {{.Version}}
//		Files:    []config.File{{Name: "application.yaml"}},
//		Sources:  []config.Source{config.Etcd(cli, "/config/{{.App}}/{{.File}}")},
//	})
//	l.OnChange(func(s config.Snapshot) { apply(s.Files["application.yaml"]) })
//	mux.Handle("/graylane/config", l.Handler()) // config.reportPath
//
// Sources take the release's target templates: Etcd (key@identity, else
// key), FromDocuments with configsync/nacos Documents (dataId
// base-identity.ext, else dataId) and Apollo (the config service read with
// label = identity, which a gray branch's rule matches).
//
// A Spring Cloud service does the same with configuration alone; see
// docs/config.md.
package config
