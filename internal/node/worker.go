package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	"nimbus/internal/worker"
)

// RunWorker runs an execution node until ctx is cancelled: it heartbeats
// to every server, serves invocations over RPC, and drains on the way
// out. It reads Servers (required), NodeID (default worker-<listen
// port>), DataDir (default ./.nimbus-worker), Listen (default
// 127.0.0.1:0), Advertise, Token, JoinToken, TLS.CA, PressureLimit and the
// options of running instances.
func RunWorker(ctx context.Context, opts Options) error {
	if len(opts.Servers) == 0 {
		return errors.New("a worker needs --servers")
	}
	if opts.DataDir == "" {
		opts.DataDir = ".nimbus-worker"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	p := newParts(opts, nil)
	w := &workerParts{parts: p}
	comps := []component{
		w.listener(),
		starting(func(context.Context) error { return os.MkdirAll(p.opts.DataDir, 0o700) }),
		p.pythons(),
		p.executor(),
		starting(w.identity),
		step{
			start: func(context.Context) error { w.pool = rpc.NewPool(w.ident); return nil },
			stop:  func(context.Context) error { w.pool.Close(); return nil },
		},
	}
	comps = append(comps, p.instances(opts.NodeID, func() worker.BlobSource {
		return worker.RemoteBlobs{Servers: p.opts.Servers, Resolve: w.dir.Internal, Pool: w.pool}
	})...)
	comps = append(comps, w.serve(), banner(func() {
		o := &p.opts
		st := p.worker.Status()
		fmt.Fprintf(o.out(), "Nimbus worker %s is running.\n\n  RPC:      %s\n  Servers:  %s\n  Slots:    %d\n  Executor: %s\n\n",
			o.NodeID, o.Advertise, strings.Join(o.Servers, ", "), st.Slots, p.exec.Name())
		p.log.Info("nimbus worker started", "rpc", o.Advertise, "servers", o.Servers, "slots", st.Slots, "executor", p.exec.Name())
	}, nil))
	return p.l.run(ctx, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel})), comps...)
}

// workerParts are what only a worker node builds.
type workerParts struct {
	*parts
	ln    net.Listener // the RPC's
	dir   *serverDirectory
	ident *pki.Identity
	pool  *rpc.Pool
}

// listener listens on the RPC address, which names the worker (and its
// log) when --id is not given.
func (w *workerParts) listener() component {
	return step{
		start: func(context.Context) error {
			o := &w.opts
			ln, err := net.Listen("tcp", o.Listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", o.Listen, err)
			}
			addr := ln.Addr().String()
			if o.Advertise == "" {
				o.Advertise = addr
			}
			if o.NodeID == "" {
				o.NodeID = "worker-" + addr[strings.LastIndex(addr, ":")+1:]
			}
			w.ln, w.log = ln, o.logger().With("worker", o.NodeID)
			return nil
		},
		// Serving closes the listener; this closes it when the worker
		// stops before it serves.
		stop: func(context.Context) error {
			w.ln.Close()
			return nil
		},
	}
}

// identity loads the worker's certificate, enrolling for one when it has
// none (or one for another name).
func (w *workerParts) identity(ctx context.Context) error {
	o := w.opts
	var apiTLS *tls.Config
	if o.TLS.CA != "" {
		var err error
		if apiTLS, err = (TLSOptions{CA: o.TLS.CA}).clientConfig(""); err != nil {
			return err
		}
	}
	w.dir = &serverDirectory{tls: apiTLS, known: map[string]string{}}
	ident, err := pki.Load(filepath.Join(o.DataDir, "pki"))
	if err != nil {
		return fmt.Errorf("worker certificate: %w", err)
	}
	w.ident = ident
	if role, name := ident.Name(); ident.Ready() && role == pki.RoleWorker && name == o.NodeID {
		return nil
	}
	cred := o.JoinToken
	if cred == "" {
		cred = o.Token
	}
	if cred == "" {
		return errors.New("a new worker needs a credential to get its certificate: a join token (--join-token, --join-token-file or NIMBUS_JOIN_TOKEN, from `nimbus cluster token create`) or an admin or worker key (--token or NIMBUS_TOKEN)")
	}
	return enrolWorker(ctx, ident, w.dir, o, cred, w.log)
}

// serve serves the Worker service to the servers of the cluster (only
// they, with their certificates, reach it) and heartbeats to each of
// them. Stopping drains: running invocations finish within the grace
// period, then the heartbeats stop.
func (w *workerParts) serve() component {
	var (
		g     *grpc.Server
		agent *worker.Agent
	)
	rpcService := w.l.service(func(context.Context) error {
		return g.Serve(w.ln)
	}, func(ctx context.Context) error {
		w.log.Info("draining: finishing in-flight invocations")
		agent.StartDrain()
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.Stop()
			<-done
		}
		return nil
	})
	heartbeats := w.l.service(func(ctx context.Context) error {
		agent.Heartbeats(ctx)
		return nil
	}, nil)
	return step{
		start: func(ctx context.Context) error {
			o := w.opts
			agent = worker.NewAgent(w.worker, worker.AgentConfig{Servers: o.Servers, Resolve: w.dir.Internal, Forget: w.dir.Forget, Advertise: o.Advertise, Pool: w.pool, PressureLimit: o.PressureLimit, Log: w.log})
			g = grpc.NewServer(append(rpc.ServerOptions(), grpc.Creds(credentials.NewTLS(w.ident.ServerConfig(false, []string{pki.ProtoGRPC}, pki.RoleServer))),
				grpc.UnaryInterceptor(agent.AuthInterceptor()), grpc.StreamInterceptor(agent.StreamAuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))...)
			agent.Register(g)
			rpcService.Start(ctx)
			return heartbeats.Start(ctx)
		},
		stop: func(ctx context.Context) error {
			err := rpcService.Stop(ctx)
			return errors.Join(err, heartbeats.Stop(ctx))
		},
	}
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

// Forget drops the internal address known for the server at apiAddr:
// Internal asks it again.
func (d *serverDirectory) Forget(apiAddr string) {
	d.mu.Lock()
	delete(d.known, apiAddr)
	d.mu.Unlock()
}

// enrolWorker gets the worker its certificate from the first server that
// answers, presenting cred (a join token or key) with a request for a
// key made here; the key never leaves the worker. A server's refusal
// (unknown or expired token) ends the attempt with its reason; servers
// that cannot be reached are tried again until ctx ends.
func enrolWorker(ctx context.Context, ident *pki.Identity, dir *serverDirectory, opts Options, token string, log *slog.Logger) error {
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
			ca, cert, err := pki.Enrol(ectx, addr, cred, pki.RoleWorker, opts.NodeID, hosts, key)
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
