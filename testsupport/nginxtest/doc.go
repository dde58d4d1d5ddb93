// Package nginxtest starts a private nginx for integration tests: its own
// prefix directory under t.TempDir(), every listen on 127.0.0.1, pid file,
// error log and temp paths inside the prefix, and an include directory the
// test (or graylane's nginx router) owns. The server is stopped by its pid
// at cleanup and its error log's tail is logged when the test failed.
//
// Entry point: Start.
//
//	ngx := nginxtest.Start(t, nginxtest.Options{})
//	// write ngx.IncludeDir/app.conf, then ngx.Reload(t) or let the router do it
package nginxtest
