package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"nimbus/internal/pki"
	"nimbus/internal/rpc"
	"nimbus/internal/runtime/python"
	"nimbus/internal/worker"
)

// WorkerOptions configures `nimbus worker`.
type WorkerOptions struct {
	ID                string   // default: worker-<listen port>
	Servers           []string // API addresses of the servers
	DataDir           string
	Listen            string // the worker's RPC address
	Advertise         string // the address servers reach it at; default Listen
	Slots             int    // 0 for one per core
	Token             string // an admin or worker key, to enrol with
	JoinToken         string // a worker join token, to enrol with
	InsecureNoSandbox bool
	IdleTimeout       time.Duration
	PressureLimit     float64 // see worker.AgentConfig
	TLSCA             string  // CA of the servers' API certificates, when their API is HTTPS
	Prestart          int     // sandboxes per runtime started ahead; 0 for none

	// FreezeAfter: see worker.Config.FreezeAfter.
	FreezeAfter time.Duration

	Out      io.Writer
	LogLevel slog.Level
}

// RunWorker runs an execution node until ctx is cancelled: it heartbeats
// to every server, serves invocations over RPC, and drains on the way out.
func RunWorker(ctx context.Context, opts WorkerOptions) error {
	if len(opts.Servers) == 0 {
		return errors.New("a worker needs --servers")
	}
	if opts.DataDir == "" {
		opts.DataDir = ".nimbus-worker"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	keepHeapFloor(ctx, heapFloor)
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	addr := ln.Addr().String()
	if opts.Advertise == "" {
		opts.Advertise = addr
	}
	if opts.ID == "" {
		opts.ID = "worker-" + addr[strings.LastIndex(addr, ":")+1:]
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel})).With("worker", opts.ID)
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		ln.Close()
		return err
	}
	runtimes, err := python.Discover()
	if err != nil {
		ln.Close()
		return fmt.Errorf("looking for Python: %w", err)
	}
	exec, err := newExecutor(DevOptions{DataDir: opts.DataDir, InsecureNoSandbox: opts.InsecureNoSandbox}, log)
	if err != nil {
		ln.Close()
		return err
	}
	if c, ok := exec.(interface{ Close() error }); ok {
		defer c.Close()
	}
	var apiTLS *tls.Config
	if opts.TLSCA != "" {
		var err error
		if apiTLS, err = (TLSOptions{CA: opts.TLSCA}).clientConfig(""); err != nil {
			ln.Close()
			return err
		}
	}
	dir := &serverDirectory{tls: apiTLS, known: map[string]string{}}
	ident, err := pki.Load(filepath.Join(opts.DataDir, "pki"))
	if err != nil {
		ln.Close()
		return fmt.Errorf("worker certificate: %w", err)
	}
	if role, name := ident.Name(); !ident.Ready() || role != pki.RoleWorker || name != opts.ID {
		cred := opts.JoinToken
		if cred == "" {
			cred = opts.Token
		}
		if cred == "" {
			ln.Close()
			return errors.New("a new worker needs a credential to get its certificate: a join token (--join-token, --join-token-file or NIMBUS_JOIN_TOKEN, from `nimbus cluster token create`) or an admin or worker key (--token or NIMBUS_TOKEN)")
		}
		if err := enrolWorker(ctx, ident, dir, opts, cred, log); err != nil {
			ln.Close()
			return err
		}
	}
	pool := rpc.NewPool(ident)
	defer pool.Close()
	w, err := worker.New(worker.Config{
		ID:          opts.ID,
		DataDir:     filepath.Join(opts.DataDir, "worker"),
		Slots:       opts.Slots,
		IdleTimeout: opts.IdleTimeout,
		Runtimes:    runtimes,
		Executor:    exec,
		Prestart:    max(opts.Prestart, 0),
		FreezeAfter: opts.FreezeAfter,
		Blobs:       worker.RemoteBlobs{Servers: opts.Servers, Resolve: dir.Internal, Pool: pool},
		Log:         log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer w.Close()
	leaveCPUsToInstances(ctx, w.InUse)
	agent := worker.NewAgent(w, worker.AgentConfig{Servers: opts.Servers, Resolve: dir.Internal, Advertise: opts.Advertise, Pool: pool, PressureLimit: opts.PressureLimit, Log: log})
	// Only servers of the cluster, with their certificates, reach the
	// worker's RPC.
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(ident.ServerConfig(false, []string{pki.ProtoGRPC}, pki.RoleServer))),
		grpc.UnaryInterceptor(agent.AuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	agent.Register(g)
	go g.Serve(ln)

	hbCtx, stopHB := context.WithCancel(context.Background())
	hbDone := make(chan struct{})
	go func() { agent.Heartbeats(hbCtx); close(hbDone) }()

	st := w.Status()
	fmt.Fprintf(opts.Out, "Nimbus worker %s is running.\n\n  RPC:      %s\n  Servers:  %s\n  Slots:    %d\n  Executor: %s\n\n",
		opts.ID, opts.Advertise, strings.Join(opts.Servers, ", "), st.Slots, exec.Name())
	log.Info("nimbus worker started", "rpc", opts.Advertise, "servers", opts.Servers, "slots", st.Slots, "executor", exec.Name())

	<-ctx.Done()
	log.Info("draining: finishing in-flight invocations")
	agent.StartDrain()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		g.Stop()
	}
	stopHB()
	<-hbDone
	return nil
}

// serverDirectory maps the servers' API addresses (--servers) to their
// internal addresses, read from their /healthz once each answers.
type serverDirectory struct {
	tls   *tls.Config
	mu    sync.Mutex
	known map[string]string
}

// Internal returns the internal address of the server at apiAddr, "" if
// it has not answered yet.
func (d *serverDirectory) Internal(apiAddr string) string {
	d.mu.Lock()
	addr, ok := d.known[apiAddr]
	d.mu.Unlock()
	if ok {
		return addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h, err := discover(ctx, apiAddr, d.tls)
	if err != nil && d.tls == nil {
		// An HTTPS API without --tls-ca: /healthz only says where the
		// internal port is, which enrolment and mutual TLS then check.
		h, err = discover(ctx, apiAddr, discoveryTLS(true))
	}
	if err != nil {
		return ""
	}
	d.mu.Lock()
	d.known[apiAddr] = h.Internal
	d.mu.Unlock()
	return h.Internal
}

// enrolWorker gets the worker its certificate from the first server that
// answers, presenting cred (a join token or key) with a request for a
// key made here; the key never leaves the worker. A server's refusal
// (unknown or expired token) ends the attempt with its reason; servers
// that cannot be reached are tried again until ctx ends.
func enrolWorker(ctx context.Context, ident *pki.Identity, dir *serverDirectory, opts WorkerOptions, token string, log *slog.Logger) error {
	cred, err := credentialOf(token)
	if err != nil {
		return err
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	hosts := pki.Hosts(opts.Advertise)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		for _, s := range opts.Servers {
			addr := dir.Internal(s)
			if addr == "" {
				if msg := "no Nimbus server answers /healthz at " + s; msg != last {
					last = msg
					log.Warn("enrolment: waiting for a server", "server", s)
				}
				continue
			}
			ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ca, cert, err := pki.Enrol(ectx, addr, cred, pki.RoleWorker, opts.ID, hosts, key)
			cancel()
			if err == nil {
				if err := ident.Install(ca, cert, key); err != nil {
					return err
				}
				log.Info("got this worker's certificate", "from", s, "ca", ca.Fingerprint())
				return nil
			}
			if pki.IsRefused(err) {
				log.Error("the cluster refused this worker", "err", err)
				return err
			}
			if err.Error() != last {
				last = err.Error()
				log.Warn("enrolment failed; trying again", "server", s, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
