// Package deploysim plays an external deploy system behind graylane's
// webhook backend, for many apps at once: it runs whatever it is asked
// to (POST /deploy), reports it (GET /apps/{app}/status), and records
// which graylane replica sent each request with which fencing token.
// The scale tests and the `make bench-scale` harness use it, so what they
// measure is graylane's own cost.
//
// Entry point:
//
//	sim := deploysim.New(deploysim.Config{Fencing: true, Record: true})
//	srv := httptest.NewServer(sim)        // or Start(t, cfg)
//	spec := sim.Spec(srv.URL, "shop", "v1", 2, "[{setWeight: 50}, {setWeight: 100}]")
//
// With Config.Fencing it behaves as a deploy system that honours
// graylane's fencing token (the X-Graylane-Fencing-Token header): a
// request carrying a token lower than one already seen for the app is
// refused with 409 and counted, as docs/backends.md recommends.
package deploysim
