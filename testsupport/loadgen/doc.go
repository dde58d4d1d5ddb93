// Package loadgen is graylane's one load generator for tests: workers send
// GET requests to one URL back to back until stopped, and every answer is
// kept as a Sample (when, which phase, which version answered — the
// X-Version header —, or why it failed). Tests use it to prove that no
// request fails while versions scale and traffic shifts, and that a
// measured split matches its weights.
//
// Entry point:
//
//	l := loadgen.Start(t, loadgen.Config{URL: "http://" + addr + "/", Workers: 8})
//	counts := l.Measure(t, 2000, time.Minute) // a new phase: 2,000 answers by version
//	res := l.Stop()                            // every sample; res.Failed must be 0
//
// Phases cut a run into measuring windows (Next, WaitPhase, Measure); with
// Config.PhaseByConnection a response only counts towards the phase its
// connection was opened in, for routers (nginx) whose old workers finish
// kept-alive connections under the previous configuration. Share measures
// a version's share in a time window instead.
package loadgen
