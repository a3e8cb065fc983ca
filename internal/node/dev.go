// Package node wires a Nimbus node together: the control plane, the
// gateway and (for `nimbus dev`) an embedded worker.
package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/blob"
	"nimbus/internal/controlplane"
	"nimbus/internal/logstore"
	"nimbus/internal/nbio"
	"nimbus/internal/notify"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// DevOptions configures `nimbus dev`.
type DevOptions struct {
	DataDir string    // default ./.nimbus
	Listen  string    // default 127.0.0.1:8080; port 0 picks a free one
	Out     io.Writer // where the banner (URL, admin token) is printed
	Slots   int       // worker slots, 0 for four per core
	// IdleTimeout retires idle instances; 0 for 10 minutes.
	IdleTimeout time.Duration
	// LogLevel for the node's own log on stderr; default info.
	LogLevel slog.Level
	// InsecureNoSandbox runs instances as plain process groups, without
	// namespaces, cgroups or seccomp. For hosts that cannot build
	// sandboxes; never for untrusted code.
	InsecureNoSandbox bool
	// SMTPAddr (host:port) and SMTPFrom configure e-mail notifications.
	SMTPAddr, SMTPFrom string
	// Retention bounds the invocation records kept (zero: the default,
	// state.DefaultRetention). It travels in each record batch this
	// server commits, so servers should agree on it.
	Retention state.Retention
	// RateLimit is the default requests per second per key (0: none).
	RateLimit float64
	// Timeouts bound slow clients.
	Timeouts HTTPTimeouts
	// TLS serves the API over HTTPS.
	TLS TLSOptions
	// ScanPolicy is off, warn (default) or block[:SEVERITY] for code
	// scanning with Bandit at deploy.
	ScanPolicy string
	// Prestart is the number of sandboxes per runtime started ahead of
	// need (see worker.Config.Prestart); 0 for none.
	Prestart int
	// FreezeAfter is how long an idle instance runs on before it is
	// frozen (see worker.Config.FreezeAfter): 0 at once, negative never.
	FreezeAfter time.Duration
}

// shutdownGrace bounds how long in-flight requests may take to finish at
// shutdown before they are cut off and their instances killed.
const shutdownGrace = 15 * time.Second

// RunDev runs a single-node Nimbus until ctx is cancelled, then shuts down
// cleanly: the listener closes, in-flight invocations finish (or are cut
// off after a grace period), pending records are committed, every
// instance is stopped and Raft is closed.
func RunDev(ctx context.Context, opts DevOptions) error {
	if opts.DataDir == "" {
		opts.DataDir = ".nimbus"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8080"
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Slots <= 0 {
		opts.Slots = 4 * runtime.NumCPU()
	}
	opts.Prestart = max(opts.Prestart, 0)
	keepHeapFloor(ctx, heapFloor)
	scanPolicy, err := parseScanPolicy(opts.ScanPolicy)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel}))
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	logs, err := logstore.Open(filepath.Join(opts.DataDir, "logs.db"), 64<<10)
	if err != nil {
		if strings.Contains(err.Error(), "timeout") {
			return fmt.Errorf("data directory %s is in use by another nimbus process", opts.DataDir)
		}
		return err
	}
	defer logs.Close()
	// The log store's lock says the data directory is this node's: what
	// its scans left there can go.
	scanDir, err := resetScratch(opts.DataDir)
	if err != nil {
		return err
	}
	blobs, err := blob.Open(filepath.Join(opts.DataDir, "blobs"))
	if err != nil {
		return err
	}
	runtimes, err := python.Discover()
	if err != nil {
		return fmt.Errorf("looking for Python: %w", err)
	}

	cp, err := controlplane.Start(controlplane.Config{
		NodeID: "dev", DataDir: opts.DataDir, Bootstrap: true, SingleNode: true, Log: log.With("subsystem", "controlplane"),
	})
	if err != nil {
		return err
	}
	defer cp.Shutdown()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cp.WaitLeader(waitCtx)
	cancel()
	if err != nil {
		return err
	}
	token, created, err := ensureAdminKey(ctx, cp, opts.DataDir)
	if err != nil {
		return err
	}

	exec, err := newExecutor(opts, log)
	if err != nil {
		return err
	}
	if c, ok := exec.(interface{ Close() error }); ok {
		defer c.Close()
	}
	w, err := worker.New(worker.Config{
		ID:          "dev-worker",
		DataDir:     filepath.Join(opts.DataDir, "worker"),
		Slots:       opts.Slots,
		IdleTimeout: opts.IdleTimeout,
		Runtimes:    runtimes,
		Executor:    exec,
		Prestart:    opts.Prestart,
		FreezeAfter: opts.FreezeAfter,
		Blobs:       blobs,
		Log:         log.With("subsystem", "worker"),
	})
	if err != nil {
		return err
	}
	defer w.Close()
	leaveCPUsToInstances(ctx, w.InUse)

	tcpLn, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	// The API's connections read and write with raw system calls
	// (package nbio says why).
	var ln net.Listener = nbio.Listener{Listener: tcpLn}
	addr := ln.Addr().String()
	placer := placement.New(nil, placement.Local(w))
	gw, async := newAPI(cp, placer, blobs, logs, apiSettings{addr: addr, timeouts: opts.Timeouts, rateLimit: opts.RateLimit, scanPolicy: scanPolicy, scanDir: scanDir,
		smtp: notify.SMTP{Addr: opts.SMTPAddr, From: opts.SMTPFrom}, retention: opts.Retention,
		checker: devChecker(runtimes, exec, scanDir, log)}, log, nil)
	defer gw.Close()
	defer async.close()
	leaderCtx, stopLeader := context.WithCancel(ctx)
	leaderDone := make(chan struct{})
	go func() {
		runLeadership(leaderCtx, cp, log.With("subsystem", "leader"), func(ctx context.Context) { async.term(ctx, nil) })
		close(leaderDone)
	}()
	defer func() { stopLeader(); <-leaderDone }()

	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: opts.Timeouts.header(),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if opts.TLS.Enabled() {
		tcfg, certFile, err := opts.TLS.serverConfig(opts.DataDir, addr)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tcfg)
		scheme = "https"
		log.Info("serving the API over TLS", "certificate", certFile)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	printBanner(opts.Out, scheme+"://"+addr, opts.DataDir, token, created, runtimes, opts.Slots, exec.Name())
	log.Info("nimbus dev started", "url", scheme+"://"+addr, "data", opts.DataDir, "executor", exec.Name())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("API server: %w", err)
	}
	log.Info("shutting down: waiting for in-flight invocations", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

func runtimeNames(rts []python.Runtime) []string {
	out := make([]string, len(rts))
	for i, r := range rts {
		out[i] = r.Name
	}
	return out
}

// ensureAdminKey creates the first admin key when the cluster has none and
// writes it to DATA/admin.token (0600). It returns the token when it is
// known (created now, or read back from the file).
func ensureAdminKey(ctx context.Context, cp *controlplane.Node, dataDir string) (string, bool, error) {
	path := filepath.Join(dataDir, "admin.token")
	if len(cp.Store().Keys()) > 0 {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, nil
		}
		return strings.TrimSpace(string(b)), false, nil
	}
	token, err := auth.CreateKey(ctx, cp, "admin", "created by nimbus dev on first start")
	if err != nil {
		return "", false, fmt.Errorf("create admin key: %w", err)
	}
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return token, true, nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newExecutor returns the sandboxing executor, or refuses with what the
// host lacks, unless the insecure mode was asked for by name.
func newExecutor(opts DevOptions, log *slog.Logger) (sandbox.Executor, error) {
	if opts.InsecureNoSandbox {
		log.Warn("INSECURE: --insecure-no-sandbox: functions run as plain processes with the worker's privileges, without namespaces, cgroups or seccomp")
		return sandbox.NewProcessExecutor(), nil
	}
	e, err := sandbox.NewIsolatedExecutor(sandbox.IsolatedConfig{
		StateDir: filepath.Join(opts.DataDir, "worker", "sandbox"),
		Log:      log.With("subsystem", "sandbox"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n(to run functions without isolation anyway, for trusted code only, start with --insecure-no-sandbox)", err)
	}
	return e, nil
}

// cliInvocation is how to run the CLI of the binary invoked as arg0: as
// invoked when that works again from another shell in this directory
// (nimbus on PATH, ./nimbus, an absolute path), else (a `go run`
// binary in a temporary directory, gone when it stops) the line that
// builds one, and ./nimbus.
func cliInvocation(arg0 string) (bin, hint string) {
	switch {
	case strings.Contains(arg0, string(filepath.Separator)+"go-build") || strings.Contains(arg0, "/exe/"):
		return "./nimbus", "Build the CLI:  go build -o nimbus ./cmd/nimbus   (this `go run` binary is temporary)"
	case !strings.ContainsRune(arg0, filepath.Separator):
		return arg0, "" // found on PATH
	case filepath.IsAbs(arg0) || strings.HasPrefix(arg0, "./") || strings.HasPrefix(arg0, "../"):
		return arg0, ""
	}
	return "./" + arg0, ""
}

func printBanner(out io.Writer, addr, dataDir, token string, created bool, rts []python.Runtime, slots int, executor string) {
	fmt.Fprintf(out, "Nimbus dev is running.\n\n")
	fmt.Fprintf(out, "  API:        %s\n", addr)
	fmt.Fprintf(out, "  Data:       %s\n", dataDir)
	switch {
	case created:
		fmt.Fprintf(out, "  Admin key:  %s\n              (saved to %s)\n", token, filepath.Join(dataDir, "admin.token"))
	case token != "":
		fmt.Fprintf(out, "  Admin key:  in %s\n", filepath.Join(dataDir, "admin.token"))
	default:
		fmt.Fprintf(out, "  Admin key:  %s is missing; the keys already made still work\n", filepath.Join(dataDir, "admin.token"))
	}
	fmt.Fprintf(out, "  Runtimes:   %s\n", strings.Join(runtimeNames(rts), ", "))
	fmt.Fprintf(out, "  Worker:     %d slots; executor: %s\n\n", slots, executor)
	bin, hint := cliInvocation(os.Args[0])
	if hint != "" {
		fmt.Fprintf(out, "%s\n", hint)
	}
	fmt.Fprintf(out, "Try:  %[1]s init greeter && %[1]s deploy greeter && %[1]s invoke greeter --data '{\"name\":\"you\"}'\n", bin)
	fmt.Fprintf(out, "Stop with Ctrl-C.\n")
}
