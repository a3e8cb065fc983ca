// Package node wires a Nimbus node together: `nimbus dev`, `nimbus
// server` and `nimbus worker` are ordered lists of the same components
// (component.go, parts.go) over one Options: the data stores, the control
// plane, the gateway and its async parts, the leader's services (one term
// of office at a time, leader.go), the API server, and the worker that
// runs instances (embedded in dev).
package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/controlplane"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/internal/worker"
)

// shutdownGrace bounds how long in-flight requests may take to finish at
// shutdown before they are cut off and their instances killed; and how
// long any one component may take to stop.
const shutdownGrace = 15 * time.Second

// RunDev runs a single-node Nimbus until ctx is cancelled, then shuts down
// cleanly: the listener closes, in-flight invocations finish (or are cut
// off after a grace period), pending records are committed, every
// instance is stopped and Raft is closed. It reads DataDir (default
// ./.nimbus), Listen (default 127.0.0.1:8080), the API's options and
// those of running instances.
func RunDev(ctx context.Context, opts Options) error {
	if opts.DataDir == "" {
		opts.DataDir = ".nimbus"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8080"
	}
	if opts.Slots <= 0 {
		opts.Slots = 4 * runtime.NumCPU()
	}
	opts.Prestart = max(opts.Prestart, 0)
	scanPolicy, err := parseScanPolicy(opts.ScanPolicy)
	if err != nil {
		return err
	}
	log := opts.logger()
	p := newParts(opts, log)
	p.scanPolicy = scanPolicy
	var (
		token   string
		created bool
	)
	once := newOnceLogin()
	comps := []component{
		p.dataStores(),
		p.pythons(),
		p.devControlPlane(),
		starting(func(ctx context.Context) (err error) {
			token, created, err = ensureAdminKey(ctx, p.cp, opts.DataDir)
			if id, _, perr := auth.ParseToken(token); err == nil && perr == nil {
				once.keyID = id
			}
			return err
		}),
		p.executor(),
	}
	comps = append(comps, p.instances("dev-worker", func() worker.BlobSource { return p.blobs })...)
	comps = append(comps,
		p.apiListener(),
		p.api(func() apiSettings {
			s := p.settings()
			s.checker = devChecker(p.runtimes, p.exec, p.scanDir, log)
			s.builder = devBuilder(p.opts, p.runtimes, p.exec, p.scanDir)
			s.consoleOnce = once.redeem
			return s
		}, func() *placement.Placer { return placement.New(nil, placement.Local(p.worker)) }, nil),
		p.leadership(nil),
		p.serveAPI(false),
		banner(func() {
			url := p.scheme() + "://" + p.addr
			console := url + "/ui/"
			if once.keyID != "" {
				console = url + "/ui/login?once=" + once.token
			}
			printBanner(opts.out(), url, console, opts.DataDir, token, created, p.runtimes, opts.Slots, p.exec.Name())
			log.Info("nimbus dev started", "url", url, "data", opts.DataDir, "executor", p.exec.Name())
		}, func() {
			log.Info("shutting down: waiting for in-flight invocations", "grace", shutdownGrace)
		}),
	)
	return p.l.run(ctx, log, comps...)
}

// onceLogin is nimbus dev's one-time console sign-in: a random token that
// the banner prints in a link, redeemed once for a session as the admin
// key (keyID; "" when there is no admin key file to act as).
type onceLogin struct {
	mu    sync.Mutex
	token string // "" once redeemed
	keyID string // set before the API serves
}

func newOnceLogin() *onceLogin {
	b := make([]byte, 24)
	rand.Read(b)
	return &onceLogin{token: hex.EncodeToString(b)}
}

// redeem returns the admin key's id the first time it is given the
// token, and "" after that or for any other token.
func (o *onceLogin) redeem(token string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.token == "" || o.keyID == "" || subtle.ConstantTimeCompare([]byte(token), []byte(o.token)) != 1 {
		return ""
	}
	o.token = ""
	return o.keyID
}

// devControlPlane is the Raft node of nimbus dev: one voter, in memory
// transport, leader within a moment of starting.
func (p *parts) devControlPlane() component {
	return step{
		start: func(ctx context.Context) error {
			cp, err := controlplane.Start(controlplane.Config{
				NodeID: "dev", DataDir: p.opts.DataDir, Bootstrap: true, SingleNode: true, Log: p.log.With("subsystem", "controlplane"),
			})
			if err != nil {
				return err
			}
			waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := cp.WaitLeader(waitCtx); err != nil {
				cp.Shutdown()
				return err
			}
			p.cp = cp
			return nil
		},
		stop: func(context.Context) error { return p.cp.Shutdown() },
	}
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
func newExecutor(opts Options, log *slog.Logger) (sandbox.Executor, error) {
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

func printBanner(out io.Writer, addr, console, dataDir, token string, created bool, rts []python.Runtime, slots int, executor string) {
	fmt.Fprintf(out, "Nimbus dev is running.\n\n")
	fmt.Fprintf(out, "  API:        %s\n", addr)
	fmt.Fprintf(out, "  Console:    %s\n", console)
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
