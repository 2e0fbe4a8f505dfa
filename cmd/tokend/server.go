package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/httpapi/audit"
)

// The HTTP server's timeouts and header limit are httpapi.DefaultServerLimits.
const (
	// shutdownTimeout bounds the whole graceful shutdown (HTTP drain, leadership
	// transfer, gossip leave, raft close).
	shutdownTimeout = 30 * time.Second
	// devInitTimeout bounds how long -dev waits for its own leadership.
	devInitTimeout = 30 * time.Second
)

func runServerCmd(e *env, args []string) int {
	cfg, err := config.Load(args, e.getenv)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(e.stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailure
	}
	// Everything a server creates (raft log, snapshots, audit log) is for
	// the tokend user only: raft creates snapshot dirs 0755 and files 0644,
	// which this umask turns into 0700 and 0600.
	syscall.Umask(0o077)
	tempDir := cfg.Dev && cfg.DataDir == "" // PrepareDataDir makes one, removed at exit
	remove, err := cfg.PrepareDataDir()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailure
	}
	logger := newLogger(cfg, e.stderr)
	defer func() {
		if err := remove(); err != nil {
			logger.Warn("cannot remove the dev data dir", "data_dir", cfg.DataDir, "error", err)
		}
	}()
	logger.Info("starting tokend", append([]any{"version", version}, cfg.LogFields()...)...)
	if err := serve(e.ctx, cfg, tempDir, logger, e.stdout); err != nil {
		logger.Error("server failed", "error", err)
		return exitFailure
	}
	logger.Info("tokend stopped")
	return exitOK
}

// newLogger builds the one root logger every component derives from.
func newLogger(cfg config.Config, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "tokend",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		Output:     w,
		JSONFormat: cfg.LogFormat == "json",
	})
}

// serve runs one node until ctx ends (a signal) or the HTTP server fails,
// then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, tempDir bool, logger hclog.Logger, stdout io.Writer) error {
	startGCTuner(os.Getenv("GOGC")) // gctune.go: GC headroom for small heaps
	// Bind HTTP first: a busy port fails before raft and gossip start, and
	// the bound address (port 0 resolved) is what gossip advertises.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on -http-addr: %w", err)
	}
	httpAddr := ln.Addr().String()

	tlsConfig, certs, err := serverTLSConfig(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	stopReload := watchCertReload(certs, logger)
	defer stopReload()

	auditLog, stopAudit, err := openAudit(cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopAudit()

	hashKey, err := tokenHashKey(cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer clear(hashKey)

	// Before the node starts, so raft's start-up telemetry is kept too.
	metrics, stopMetrics, err := newMetricsRegistry()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()

	clusterTLS, stopClusterReload, err := loadClusterTLS(cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopClusterReload()

	clock, skew, err := testClock()
	if err != nil {
		ln.Close()
		return err
	}
	if clock != nil {
		logger.Warn("TEST KNOB: wall clock shifted (TOKEND_TEST_CLOCK_OFFSET); never use in production", "offset", skew.String())
	}

	node, err := cluster.New(cluster.Config{
		NodeID:          cfg.NodeID,
		DataDir:         cfg.DataDir,
		HTTPAddr:        httpAddr,
		RaftAddr:        cfg.RaftAddr,
		GossipAddr:      cfg.GossipAddr,
		Join:            cfg.Join,
		BootstrapExpect: cfg.BootstrapExpect,
		ClusterKey:      cfg.ClusterKey,
		TokenHashKey:    hashKey,
		MaxStale:        cfg.MaxStale,
		Logger:          logger,
		Version:         version,
		TLS:             clusterTLS,
		Timing:          testTiming(),
		Clock:           clock,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("start node: %w", err)
	}
	metrics.MustRegister(node.Collector())

	httpLog := logger.Named("http")
	api := httpapi.New(node, httpapi.Options{
		Logger:        httpLog,
		MaxStale:      cfg.MaxStale,
		Version:       version,
		ClusterName:   "tokend",
		Audit:         auditLog,
		AuditFailOpen: cfg.AuditFailOpen,
		RateLimiter: httpapi.NewRateLimiter(httpapi.RateLimits{PerSecond: cfg.RateLimit, Burst: cfg.RateLimitBurst, BadAuthPerSecond: cfg.RateLimitBadAuth, BadAuthBurst: cfg.RateLimitBadAuthBurst,
			TokenPerSecond: cfg.RateLimitToken, TokenBurst: cfg.RateLimitTokenBurst}),
		MaxRequestBytes: cfg.MaxRequestSize,
		Metrics:         metrics,
		Now:             clock,
	})
	// Forwarded requests arrive on the cluster port (with cluster TLS) and
	// are served by the same handler; the client listener refuses them.
	node.SetForwardHandler(api)
	srv := &http.Server{
		Handler:   node.ClientHandler(api),
		TLSConfig: tlsConfig,
		ErrorLog:  httpLog.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	httpapi.DefaultServerLimits.Apply(srv)
	serveErr := make(chan error, 1)
	scheme := "http"
	if tlsConfig != nil {
		// The certificate comes from TLSConfig.GetCertificate; ServeTLS adds h2.
		scheme = "https"
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	logger.Info("http api listening", "http_addr", httpAddr, "tls", tlsConfig != nil)

	var runErr error
	if cfg.Dev {
		runErr = devInit(ctx, node, cfg, tempDir, scheme+"://"+httpAddr, stdout, logger)
	}
	if runErr == nil {
		select {
		case <-ctx.Done():
			logger.Info("shutdown requested")
		case err := <-serveErr:
			runErr = fmt.Errorf("http server: %w", err)
		}
	}

	// Graceful: hand leadership over while still serving (followers then
	// forward elsewhere before this API closes; cluster.Node.StepDown says
	// why), stop accepting, let in-flight requests finish (a write in
	// flight still commits or fails cleanly), then leave the cluster.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	node.StepDown(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("http shutdown did not finish", "error", err)
		srv.Close()
	}
	if err := node.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("node shutdown: %w", err))
	}
	return runErr
}

// tokenHashKey is -token-hash-key-file's key, or with -dev and no file a
// random one that lives only in memory: tokens then die with the process
// (a dev node restarted on its -data-dir needs the file to keep them).
func tokenHashKey(cfg config.Config, logger hclog.Logger) ([]byte, error) {
	if len(cfg.TokenHashKey) > 0 {
		return cfg.TokenHashKey, nil
	}
	if !cfg.Dev {
		return nil, errors.New("invalid config: -token-hash-key-file is required")
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate the token hash key: %w", err)
	}
	logger.Info("dev: token hash key generated in memory; tokens do not survive a restart without -token-hash-key-file")
	return k, nil
}

// devInit waits for the single dev node to lead, initialises the store and
// prints the banner. A dev node restarted on an explicit -data-dir is
// already initialised; it says so instead of printing a token.
func devInit(ctx context.Context, node *cluster.Node, cfg config.Config, tempDir bool, apiAddr string, stdout io.Writer, logger hclog.Logger) error {
	ictx, cancel := context.WithTimeout(ctx, devInitTimeout)
	defer cancel()
	if err := node.WaitForLeader(ictx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: just shut down
		}
		return fmt.Errorf("dev: no leader: %w", err)
	}
	root, err := httpapi.InitRoot(ictx, node, cfg.DevRootTokenID)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if !node.State().Initialized() {
			return fmt.Errorf("dev: initialise root token: %w", err)
		}
		logger.Info("dev: store already initialised; keeping its root token", "data_dir", cfg.DataDir)
	}
	devBanner(stdout, apiAddr, root, cfg.DataDir, tempDir, cfg.TLSCertFile)
	return nil
}

// devBanner is Vault's dev banner, adapted. It is the one place tokend
// prints a token ID.
// With TLS (certFile set) it also says how to make clients trust the
// certificate.
func devBanner(w io.Writer, apiAddr, root, dataDir string, tempDir bool, certFile string) {
	removed := ""
	if tempDir {
		removed = " (removed at exit)"
	}
	fmt.Fprintf(w, `==> tokend server started in dev mode (version %s).

WARNING! dev mode is enabled: one node, bootstrapped and initialised,
data in %s%s.
Do not run dev mode in production.

You may need to set the following environment variables:

    $ export VAULT_ADDR='%s'
    $ export TOKEND_ADDR='%s'

`, version, dataDir, removed, apiAddr, apiAddr)
	if certFile != "" {
		fmt.Fprintf(w, `The API is served over TLS with %s. Point clients at the CA
certificate that signed it (or at the certificate itself if self-signed):

    $ export VAULT_CACERT='/path/to/ca.pem'
    $ export TOKEND_CACERT='/path/to/ca.pem'

`, certFile)
	}
	if root == "" {
		fmt.Fprint(w, "The store was already initialised; use the root token printed when it was created.\n\n")
		return
	}
	fmt.Fprintf(w, "The root token is displayed below; it never expires:\n\nRoot Token: %s\n\n", root)
}

// openAudit opens -audit-file (nil when unset) and reopens it on SIGHUP, so
// that logrotate can move the file away and signal. stop ends the SIGHUP
// handling and closes (syncs) the file; call it after the HTTP server has
// drained.
func openAudit(cfg config.Config, logger hclog.Logger) (l *audit.Log, stop func(), err error) {
	if cfg.AuditFile == "" {
		return nil, func() {}, nil
	}
	l, err = audit.OpenFile(cfg.AuditFile)
	if err != nil {
		return nil, nil, fmt.Errorf("-audit-file: %w", err)
	}
	log := logger.Named("audit")
	log.Info("audit log enabled", "path", cfg.AuditFile, "fail_open", cfg.AuditFailOpen)
	stopHUP := onSIGHUP(func() {
		if err := l.Reopen(); err != nil {
			log.Error("audit log reopen failed; still writing the old file", "path", cfg.AuditFile, "error", err)
		} else {
			log.Info("audit log reopened", "path", cfg.AuditFile)
		}
	})
	stop = func() {
		stopHUP()
		if err := l.Close(); err != nil {
			log.Error("audit log close failed", "error", err)
		}
	}
	return l, stop, nil
}

// onSIGHUP calls fn for every SIGHUP until stop is called; stop waits for a
// running fn to finish.
func onSIGHUP(fn func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-hup:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}
