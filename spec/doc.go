// Package spec defines graylane's release spec: the document an operator keeps
// in a config centre (etcd, Nacos or Apollo), one per app, that says which code
// version should run, with which strategy, on which backend, with which bound
// config and gray rules.
//
// Entry point: Parse, which accepts YAML or JSON, rejects unknown fields and
// type mismatches with the exact field path, fills defaults and validates:
//
//	rel, err := spec.Parse(data)
//	if err != nil {
//		var verr *spec.ValidationError
//		if errors.As(err, &verr) {
//			fmt.Println(verr.Field()) // e.g. "strategy.steps[2].setWeight"
//		}
//	}
//
// Every error names its field path, for example
// `strategy.steps[2].setWeight: 150 is over 100`.
package spec
