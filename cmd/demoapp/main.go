package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graylane/graylane/sdk/config"
)

// maxSleep bounds ?sleep= so a stray request cannot pin an instance forever.
const maxSleep = 60 * time.Second

type options struct {
	version         string
	addr            string
	failHealth      bool
	startDelay      time.Duration
	shutdownTimeout time.Duration

	// sleeping, if set, receives a value when a ?sleep= request starts
	// waiting (a test hook).
	sleeping chan<- struct{}

	// config says where config is loaded from (config.go); conf is the
	// running loader, nil without --config-files.
	config configFlags
	conf   *config.Loader

	// gray makes it a service of a gray call chain (gray.go); grayc is
	// its SDK client, nil without --gray-etcd.
	gray  grayFlags
	grayc *grayService
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probe(os.Args[2:], os.Stderr))
	}
	var o options
	flag.StringVar(&o.version, "version", "dev", "version this instance reports")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address host:port")
	flag.BoolVar(&o.failHealth, "fail-health", false, "answer 503 on /healthz")
	flag.DurationVar(&o.startDelay, "start-delay", 0, "wait this long before listening")
	flag.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "bound on the graceful shutdown")
	o.config.register(flag.CommandLine)
	o.gray.register(flag.CommandLine)
	flag.Parse()

	logger := log.New(os.Stderr, "demoapp "+o.version+" ", log.LstdFlags|log.Lmicroseconds)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o, logger); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, logger *log.Logger) error {
	if o.startDelay > 0 {
		logger.Printf("waiting %s before listening", o.startDelay)
		select {
		case <-time.After(o.startDelay):
		case <-ctx.Done():
			return nil
		}
	}
	conf, closeConf, err := loadConfig(ctx, o.config, o.version, newSlog())
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer closeConf()
	o.conf = conf
	if o.grayc, err = startGray(ctx, o.gray, o.version, o.addr); err != nil {
		return err
	}
	if o.grayc != nil {
		defer o.grayc.close()
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	var handler http.Handler = newHandler(o)
	if o.grayc != nil {
		handler = o.grayc.client.Middleware(handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Printf("listening on %s (pid %d)", ln.Addr(), os.Getpid())
	if o.grayc != nil {
		if err := o.grayc.ready(ctx); err != nil {
			return fmt.Errorf("gray: %w", err)
		}
		logger.Printf("registered as %s %s", o.gray.app, o.version)
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Printf("signal received: shutting down, finishing in-flight requests (at most %s)", o.shutdownTimeout)
	if o.grayc != nil {
		// leave the registry first, so callers stop picking this instance
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = o.grayc.client.Deregister(dctx)
		dcancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Print("stopped")
	return nil
}

func newHandler(o options) http.Handler {
	pid := strconv.Itoa(os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("sleep"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > maxSleep {
				http.Error(w, "sleep must be a duration between 0 and "+maxSleep.String(), http.StatusBadRequest)
				return
			}
			if o.sleeping != nil {
				o.sleeping <- struct{}{}
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Version", o.version)
		w.Header().Set("X-Pid", pid)
		if _, sum := configLoaded(o.conf); sum != "" {
			w.Header().Set("X-Config-Checksum", sum)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, o.version+"\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", o.version)
		if o.failHealth {
			http.Error(w, "unhealthy (--fail-health)", http.StatusServiceUnavailable)
			return
		}
		if ok, why := configLoaded(o.conf); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		if o.grayc != nil && !o.grayc.registered.Load() {
			http.Error(w, "not registered yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	if o.grayc != nil {
		mux.HandleFunc("GET /chain", o.grayc.chain)
	}
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		env := map[string]string{}
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "DEMO_") {
				env[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"version": o.version,
			"pid":     os.Getpid(),
			"cwd":     cwd,
			"env":     env,
		})
	})
	configRoutes(mux, o.conf)
	return mux
}
