package nacos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"

	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"

	"github.com/graylane/graylane/configsync"
)

// canaryPing is how often a READY canary sends Nacos a ServerCheckRequest.
// A gRPC connection that sends no request looks dead to the server:
// Polaris drops connections silent for 20 s, and v1.18.1 then crashes
// (it unregisters the connection twice and dereferences nil in
// DiscoverServer.HandleClientDisConnect). nacos-sdk-go itself sends a
// health check every 5 s; the canaries follow suit.
const canaryPing = 5 * time.Second

// errReplaced: a call found its client replaced before it ran.
var errReplaced = fmt.Errorf("%w: the connection was replaced", configsync.ErrUnavailable)

// sdkClient is what session needs of a nacos-sdk-go client.
type sdkClient interface{ CloseClient() }

// session keeps one nacos-sdk-go client connected to the cluster and
// replaces it, instead of letting the SDK reconnect by itself.
//
// Why: the released nacos-sdk-go v2's RpcClient reconnects with
// unsynchronised writes to its current connection (upstream issues #741,
// #905; still present in v2.3.5), which the race detector reports and which
// can tear an interface read. graylane's own build uses a copy with that
// fixed (third_party/nacos-sdk-go/GRAYLANE.md), but a program importing this
// package builds against the released SDK (replace directives apply only to
// graylane's own module), and a fresh client per outage is also the one
// clear "re-read everything" point consumers need. So session watches the servers' gRPC ports with its own idle gRPC
// connections (the canaries): the moment none is READY, it shuts the SDK
// client down, before the SDK can reconnect; once a canary is READY again
// it builds a fresh client, checks it with one request (warm) and
// publishes it under a new generation. Consumers re-read everything when
// the generation changes, which is exactly "after a reconnect, re-read".
type session[C sdkClient] struct {
	kind    string
	log     *slog.Logger
	dial    func() (C, error) // builds a client (and re-bridges the SDK log)
	warm    func(C) error     // first request on a new client
	timeout time.Duration

	canaries []*grpc.ClientConn

	// useMu admits one SDK call at a time: nacos-sdk-go's request path
	// reads its status without synchronisation when the connection is not
	// healthy (upstream issue #908), so two calls failing together race.
	useMu sync.Mutex

	mu      sync.Mutex
	cur     C
	up      bool
	gen     uint64
	lastErr error
	changed chan struct{} // closed and replaced whenever up or gen changes

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newSession[C sdkClient](kind string, servers []server, creds credentials.TransportCredentials, timeout time.Duration, log *slog.Logger,
	dial func() (C, error), warm func(C) error) (*session[C], error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session[C]{
		kind: kind, log: log, dial: dial, warm: warm, timeout: timeout,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		ctx:     ctx, cancel: cancel,
		done:    make(chan struct{}),
		lastErr: errors.New("not connected yet"),
	}
	for _, srv := range servers {
		cc, err := grpc.NewClient("passthrough:///"+srv.grpcAddr(),
			grpc.WithTransportCredentials(creds),
			grpc.WithIdleTimeout(0), // never go idle: idleness would read as "down"
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: timeout,
			}))
		if err != nil {
			s.closeCanaries()
			cancel()
			return nil, fmt.Errorf("nacos: watch server %s: %w", srv.grpcAddr(), err)
		}
		s.canaries = append(s.canaries, cc)
	}
	go s.run()
	for _, cc := range s.canaries {
		go s.ping(cc)
	}
	return s, nil
}

// ping keeps a canary's connection active on the server with a
// ServerCheckRequest every canaryPing while it is READY. Failures are left
// to the connectivity state, which is what run follows.
func (s *session[C]) ping(cc *grpc.ClientConn) {
	req := rpc_request.NewServerCheckRequest()
	payload := &nacosgrpc.Payload{
		Metadata: &nacosgrpc.Metadata{Type: req.GetRequestType(), Headers: req.GetHeaders()},
		Body:     &anypb.Any{Value: []byte(req.GetBody(req))},
	}
	client := nacosgrpc.NewRequestClient(cc)
	t := time.NewTicker(canaryPing)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if cc.GetState() != connectivity.Ready {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		if _, err := client.Request(ctx, payload); err != nil && s.ctx.Err() == nil {
			s.log.Debug("nacos: canary server check failed", "client", s.kind, "err", err)
		}
		cancel()
	}
}

// run follows the canaries and keeps the client in step with them.
func (s *session[C]) run() {
	defer close(s.done)
	states := make(chan struct{}, 1)
	for _, cc := range s.canaries {
		go func(cc *grpc.ClientConn) {
			for {
				st := cc.GetState()
				if st == connectivity.Idle {
					cc.Connect()
				}
				select {
				case states <- struct{}{}:
				default:
				}
				if !cc.WaitForStateChange(s.ctx, st) {
					return
				}
			}
		}(cc)
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	delay := 100 * time.Millisecond
	for {
		select {
		case <-s.ctx.Done():
			s.down(errClosed)
			return
		case <-states:
		case <-s.kick:
		case <-retry.C:
		}
		reachable := s.reachable()
		s.mu.Lock()
		up := s.up
		s.mu.Unlock()
		switch {
		case up && !reachable:
			s.down(errors.New("connection to the server lost"))
		case !up && reachable:
			if err := s.bringUp(); err != nil {
				s.log.Warn("nacos: connect failed", "client", s.kind, "err", err, "retry_in", delay)
				retry.Reset(delay)
				delay = min(delay*2, 5*time.Second)
			} else {
				delay = 100 * time.Millisecond
			}
		case !up && !reachable:
			// Make sure a canary sitting in backoff tries again soon.
			for _, cc := range s.canaries {
				cc.Connect()
			}
		}
	}
}

func (s *session[C]) reachable() bool {
	for _, cc := range s.canaries {
		if cc.GetState() == connectivity.Ready {
			return true
		}
	}
	return false
}

func (s *session[C]) bringUp() error {
	c, err := s.dial()
	if err != nil {
		s.setErr(err)
		return fmt.Errorf("create %s client: %w", s.kind, err)
	}
	if err := s.warm(c); err != nil {
		c.CloseClient()
		s.setErr(err)
		return fmt.Errorf("first %s request: %w", s.kind, err)
	}
	s.mu.Lock()
	s.cur, s.up, s.lastErr = c, true, nil
	s.gen++
	gen := s.gen
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("nacos: connected", "client", s.kind, "generation", gen)
	return nil
}

func (s *session[C]) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// down shuts the current client down (if any) and records why.
func (s *session[C]) down(reason error) {
	s.mu.Lock()
	if !s.up {
		s.lastErr = reason
		s.mu.Unlock()
		return
	}
	old := s.cur
	var zero C
	s.cur, s.up, s.lastErr = zero, false, reason
	close(s.changed)
	s.changed = make(chan struct{})
	gen := s.gen
	s.mu.Unlock()
	s.log.Warn("nacos: disconnected", "client", s.kind, "generation", gen, "reason", reason)
	// Shut down at once, without waiting for a call in flight: every moment
	// the old client lives after its server came back is a chance for the
	// SDK's own reconnection, whose race is far wider than the one between
	// a shutdown and a call that has already failed. On Close there is no
	// such reconnection to fear: wait for the call in flight, or it races
	// the SDK's own listener inside the shut-down client (upstream #908).
	if errors.Is(reason, errClosed) {
		s.useMu.Lock()
		defer s.useMu.Unlock()
	}
	old.CloseClient()
}

// errClosed is why a session's client goes down when the session closes.
var errClosed = errors.New("closed")

func (s *session[C]) isCurrent(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up && s.gen == gen
}

// exec runs fn, a blocking call on the client of generation gen, through
// the session's one-call-at-a-time gate; it returns early, with an error
// wrapping ErrUnavailable, if ctx ends first (the SDK call itself is
// bounded by Config.Timeout). A client replaced meanwhile is not called.
func exec[C sdkClient, T any](ctx context.Context, s *session[C], gen uint64, fn func() (T, error)) (T, error) {
	// Give up at once when the client is replaced: a call on a dead
	// connection would otherwise hold its caller for the full timeout.
	s.mu.Lock()
	changed := s.changed
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return call(ctx, func() (T, error) {
		s.useMu.Lock()
		defer s.useMu.Unlock()
		if !s.isCurrent(gen) {
			var zero T
			return zero, errReplaced
		}
		return fn()
	})
}

// fail reports that a request on generation gen failed in a way that
// suggests a broken connection. If gen is still current the client is
// replaced (at once if the server is reachable).
func (s *session[C]) fail(gen uint64, err error) {
	s.mu.Lock()
	current := s.up && s.gen == gen
	s.mu.Unlock()
	if !current {
		return
	}
	s.down(fmt.Errorf("request failed: %w", err))
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// client returns the connected client and its generation, waiting up to
// the request timeout (or ctx) for a connection. It fails with an error
// wrapping configsync.ErrUnavailable.
func (s *session[C]) client(ctx context.Context) (C, uint64, error) {
	var timer *time.Timer
	for {
		s.mu.Lock()
		c, up, gen, ch, lastErr := s.cur, s.up, s.gen, s.changed, s.lastErr
		s.mu.Unlock()
		if up {
			if timer != nil {
				timer.Stop()
			}
			return c, gen, nil
		}
		if timer == nil {
			timer = time.NewTimer(s.timeout)
			defer timer.Stop()
		}
		var zero C
		select {
		case <-ch:
		case <-ctx.Done():
			return zero, 0, fmt.Errorf("%w: %w (%w)", configsync.ErrUnavailable, lastErr, ctx.Err())
		case <-timer.C:
			return zero, 0, fmt.Errorf("%w: %w", configsync.ErrUnavailable, lastErr)
		case <-s.ctx.Done():
			return zero, 0, fmt.Errorf("%w: client closed", configsync.ErrUnavailable)
		}
	}
}

// state returns the current generation, whether a client is up, the last
// connection error and a channel closed at the next change.
func (s *session[C]) state() (gen uint64, up bool, lastErr error, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.up, s.lastErr, s.changed
}

func (s *session[C]) close() {
	s.cancel()
	<-s.done
	s.closeCanaries()
}

func (s *session[C]) closeCanaries() {
	for _, cc := range s.canaries {
		_ = cc.Close()
	}
}

// call runs fn (a blocking SDK call) and returns early, with an error
// wrapping ErrUnavailable, if ctx ends first. The SDK call itself is bounded
// by Config.Timeout, so an abandoned call does not linger.
func call[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: %w", configsync.ErrUnavailable, ctx.Err())
	}
}
