// Package sshdtest starts N independent OpenSSH servers that play the
// "hosts" of the SSH backend's integration tests. Each host listens on its
// own loopback address (127.0.X.2, 127.0.X.3, ...) with its own host key,
// authorized_keys, pid file, log and deploy root; a known_hosts file lists
// every host's real key so host-key verification is exercised for real, and
// RegenerateHostKey re-keys one host to test a changed key. Hosts are stopped
// by pid when the test ends.
//
// Sessions run through the login user's real shell, but with HOME set to the
// host's directory (sshd's SetEnv), so the test machine's own ~/.bashrc,
// which bash sources for every SSH command, does not slow each session down
// (on the development VM, root's .bashrc runs `pyenv init`: ~100ms a session).
//
// Entry point: Start. BuildHostApp builds the tiny app the tests deploy.
//
//	c := sshdtest.Start(t, 4)
//	// c.User, c.KeyFile, c.KnownHosts, c.Hosts[i].Addr, c.Hosts[i].Root
package sshdtest
