// Package apollorules reads the gray documents graylane publishes in Apollo
// (gray.centre: apollo), for graylane's SDK: Rules returns the source to
// put in sdk.Config.Rules. Apollo has no service registry, so a service
// that reads its rules from Apollo still registers through etcd
// (sdk/etcdreg), Nacos naming (sdk/nacosreg) or graylane's API
// (sdk/apireg).
//
// Apollo layout: item {app} of the properties namespace graylane-gray
// (gray.DefaultApolloNamespace) of Apollo app graylane, cluster default;
// each publication is an Apollo release. The client is agollo v4 through
// configsync/apollo, so it polls with agollo's fixed 2 s pause: a rule
// change reaches a service within about 2 s.
//
// Entry point:
//
//	rules, err := apollorules.Rules(apollo.Config{Meta: "http://apollo-meta:8080"})
//	reg := etcdreg.New(etcdreg.Config{Client: cli})
//	c, err := sdk.Start(ctx, sdk.Config{App: "shop", Version: "v2", Addr: addr,
//		Rules: rules, Registrar: reg, Discovery: reg, Services: []string{"stock"}})
package apollorules
