package docker

import (
	"context"
	"errors"
	"net"
	"net/url"
)

// SSHConfig configures ssh:// engines.
type SSHConfig struct{}

type sshDialer struct{}

func newSSHDialer(*SSHConfig, *url.URL) (*sshDialer, error) {
	return nil, errors.New("ssh:// engines are not supported yet")
}

func (d *sshDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errors.New("ssh:// engines are not supported yet")
}
