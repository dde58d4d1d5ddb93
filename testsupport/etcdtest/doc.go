// Package etcdtest starts graylane's embedded etcd (internal/etcdserver)
// for one test: free loopback ports, a temporary data directory, fsync off
// unless asked for, and a connected client; everything ends with the test.
// It is the only way tests start etcd, so every such test is an
// integration test (it calls testenv.AssertIntegrationTest).
//
// Entry point:
//
//	func TestSomething(t *testing.T) {
//		testenv.IntegrationTest(t)
//		e := etcdtest.Start(t)
//		cli := e.Client() // closed before the member stops
//		...
//		e.Restart(t) // same data, same address: a config-centre restart
//	}
package etcdtest
