// Command hostapp is the tiny app the SSH backend's tests deploy to their
// sshd "hosts". It is its own module so testenv.BuildTool caches its binary.
//
//	hostapp serve   -listen ADDR -dir DIR
//	hostapp restart -listen ADDR -dir DIR -pidfile FILE -log FILE
//	hostapp stop    -pidfile FILE
//
// serve answers every path with "version=<v> host=<listen>" (and the header
// X-Version), where <v> is the first line of DIR/VERSION read at start-up,
// so a process keeps serving the version it started with even after the
// current symlink moves. /healthz answers 200, or 503 while the release has
// an UNHEALTHY file. SIGTERM stops it gracefully: the listener closes at
// once and requests in flight finish.
//
// restart stops the process named by the pid file (SIGTERM, waiting for it
// to exit) and starts a new detached serve, recording its pid; stop only
// stops.
package main
