package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"nimbus/internal/auth"
	"nimbus/internal/blob"
	"nimbus/internal/controlplane"
	"nimbus/internal/fsm"
	"nimbus/internal/gateway"
	"nimbus/internal/logstore"
	"nimbus/internal/nbio"
	"nimbus/internal/notify"
	"nimbus/internal/pki"
	"nimbus/internal/placement"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/state"
)

// ServerOptions configures `nimbus server`.
type ServerOptions struct {
	NodeID  string
	DataDir string
	Listen  string // API and internal RPC, HOST:PORT
	Raft    string // Raft transport, HOST:PORT
	// BootstrapExpect makes the servers of a new cluster wait until they
	// see this many of themselves (through Join), then bootstrap together.
	BootstrapExpect int
	Join            []string // API addresses of other servers
	// BootstrapTokenFile holds the cluster's initial admin key, which the
	// servers also use between themselves.
	BootstrapTokenFile string
	// JoinToken (a server join token from `nimbus cluster token create
	// --role server`) lets a new server get its certificate without the
	// bootstrap key.
	JoinToken string
	// WorkerDeadAfter: a worker silent this long is offered nothing; 0 for
	// five heartbeats (5 s).
	WorkerDeadAfter time.Duration
	// WorkerForgetAfter: a worker silent this long leaves the cluster
	// view (shown dead until then); 0 for placement.DefaultForgetAfter.
	WorkerForgetAfter time.Duration
	// Standby joins as a non-voter, promoted by the leader when a voter
	// has been dead for PromoteAfter (default 10 s).
	Standby      bool
	PromoteAfter time.Duration
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
	// TLS serves the API over TLS. (Internal traffic is always mutual
	// TLS with the cluster CA's certificates, on the Raft port.)
	TLS TLSOptions
	// ScanPolicy is off, warn (default) or block[:SEVERITY] for code
	// scanning with Bandit at deploy.
	ScanPolicy string
	Out        io.Writer
	LogLevel   slog.Level
}

// RunServer runs a control-plane server until ctx is cancelled.
func RunServer(ctx context.Context, opts ServerOptions) error {
	if opts.NodeID == "" || opts.DataDir == "" || opts.Listen == "" || opts.Raft == "" {
		return errors.New("a server needs --node-id, --data, --listen and --raft")
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.WorkerDeadAfter <= 0 {
		opts.WorkerDeadAfter = 5 * time.Second
	}
	if opts.PromoteAfter <= 0 {
		opts.PromoteAfter = 10 * time.Second
	}
	keepHeapFloor(ctx, heapFloor)
	scanPolicy, err := parseScanPolicy(opts.ScanPolicy)
	if err != nil {
		return err
	}
	if opts.Standby && len(opts.Join) == 0 {
		return errors.New("a --standby server needs --join to reach the cluster")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel})).With("node", opts.NodeID)
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return err
	}
	token, err := clusterToken(opts)
	if err != nil {
		return err
	}
	logs, err := logstore.Open(filepath.Join(opts.DataDir, "logs.db"), 64<<10)
	if err != nil {
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

	ident, err := pki.Load(filepath.Join(opts.DataDir, "pki"))
	if err != nil {
		return fmt.Errorf("cluster certificate: %w", err)
	}
	tcpLn, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	// The API's connections read and write with raw system calls
	// (package nbio says why).
	var ln net.Listener = nbio.Listener{Listener: tcpLn}
	apiAddr := ln.Addr().String()
	if err := serverIdentity(ident, opts, apiAddr, log); err != nil {
		ln.Close()
		return err
	}
	raftAdvertise, err := net.ResolveTCPAddr("tcp", opts.Raft)
	if err == nil && (raftAdvertise.IP == nil || raftAdvertise.IP.IsUnspecified()) {
		err = errors.New("it must be an address the other servers can reach, not an unspecified one")
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("--raft %s: %w", opts.Raft, err)
	}
	// The internal port: Raft, the Control service and enrolment, all TLS.
	iln, err := net.Listen("tcp", opts.Raft)
	if err != nil {
		ln.Close()
		return fmt.Errorf("internal port (--raft) %s: %w", opts.Raft, err)
	}
	mux := pki.NewMux(iln, ident.ServerConfig(true, []string{pki.ProtoRaft, pki.ProtoGRPC}, pki.RoleServer, pki.RoleWorker), log.With("subsystem", "internal"))
	defer mux.Close()
	stream := &raftStream{Listener: mux.Listener(pki.ProtoRaft), advertise: raftAdvertise, id: ident, log: log.With("subsystem", "raft")}
	grpcLn, enrolLn := mux.Listener(pki.ProtoGRPC), mux.Listener(pki.ProtoEnrol)
	go mux.Serve()
	transport := raft.NewNetworkTransport(stream, 3, 10*time.Second, os.Stderr)
	pool := rpc.NewPool(ident)
	defer pool.Close()
	cp, err := controlplane.Start(controlplane.Config{
		NodeID: opts.NodeID, DataDir: opts.DataDir, Transport: transport, RPC: pool,
		Log: log.With("subsystem", "controlplane"),
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer cp.Shutdown()

	prober := controlplane.NewProber(cp)
	registry := placement.NewRegistry(pool, opts.WorkerDeadAfter, opts.WorkerForgetAfter, log.With("subsystem", "placement"))
	svc := controlplane.NewService(cp, apiAddr, blobs, registry)
	grpcServer := grpc.NewServer(grpc.Creds(rpc.Handshaken()), grpc.UnaryInterceptor(svc.AuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	svc.Register(grpcServer)
	go grpcServer.Serve(grpcLn)
	enrolSrv := &pki.EnrolServer{Identity: ident, Authorize: enrolAuthorizer(cp.Store(), token), Log: log.With("subsystem", "enrol")}
	go enrolSrv.Serve(enrolLn)

	placer := placement.New(registry)
	checker, closeChecker := serverChecker(opts.DataDir, scanDir, log)
	defer closeChecker()
	gw, async := newAPI(cp, placer, blobs, logs, apiSettings{addr: apiAddr, timeouts: opts.Timeouts, rateLimit: opts.RateLimit, scanPolicy: scanPolicy, scanDir: scanDir,
		smtp: notify.SMTP{Addr: opts.SMTPAddr, From: opts.SMTPFrom}, retention: opts.Retention, checker: checker}, log, func(c *gateway.Config) {
		c.ReplicateBlob = replicator(cp, pool, apiAddr)
		c.PeerView = prober.Overlay
		c.NotMember = prober.NotMember
		c.Membership = &membership{cp: cp, pool: pool, registry: registry, discoveryTLS: discoveryTLS(opts.TLS.Enabled())}
		c.Health = func() any {
			h := serverHealth{ID: cp.ID(), Internal: cp.RaftAddr(), Bootstrapped: cp.HasState()}
			if ca := ident.CA(); ca != nil {
				h.CA = ca.Fingerprint()
			}
			return h
		}
	})
	defer gw.Close()
	defer async.close()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if opts.TLS.Enabled() {
		serverTLS, certFile, err := opts.TLS.serverConfig(opts.DataDir, apiAddr)
		if err != nil {
			ln.Close()
			return err
		}
		protocols.SetHTTP2(true)
		ln = tls.NewListener(ln, serverTLS)
		log.Info("serving the API over TLS", "certificate", certFile)
	}
	srv := &http.Server{
		Handler:           gw,
		Protocols:         &protocols,
		ReadHeaderTimeout: opts.Timeouts.header(),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go joinCluster(runCtx, cp, pool, ident, opts, apiAddr, token, log)
	go registerSelf(runCtx, cp, apiAddr, log)
	leaderDone := make(chan struct{})
	go func() {
		runLeadership(runCtx, cp, log.With("subsystem", "leader"), func(ctx context.Context) {
			async.term(ctx, func(ctx context.Context) { leaderDuties(ctx, cp, token, opts.DataDir, log) })
		})
		close(leaderDone)
	}()
	defer func() { stop(); <-leaderDone }()
	go prober.Run(runCtx)
	go controlplane.Autopilot(runCtx, cp, prober, opts.PromoteAfter, log.With("subsystem", "autopilot"))

	scheme := "http"
	if opts.TLS.Enabled() {
		scheme = "https"
	}
	fmt.Fprintf(opts.Out, "Nimbus server %s is running.\n\n  API:       "+scheme+"://%s\n  Internal:  %s (Raft and internal RPC, mutual TLS)\n  Data:      %s\n\n", opts.NodeID, apiAddr, cp.RaftAddr(), opts.DataDir)
	log.Info("nimbus server started", "api", apiAddr, "raft", cp.RaftAddr(), "bootstrap_expect", opts.BootstrapExpect, "join", opts.Join)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("API server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	grpcServer.Stop()
	return nil
}

// clusterToken reads the bootstrap token file, or else DATA/admin.token.
func clusterToken(opts ServerOptions) (string, error) {
	path := opts.BootstrapTokenFile
	if path == "" {
		path = filepath.Join(opts.DataDir, "admin.token")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if (opts.BootstrapExpect > 1 || len(opts.Join) > 0) && opts.JoinToken == "" {
				return "", errors.New("servers of a cluster share a key: pass --bootstrap-token-file (a file holding a key such as one made by `nimbus keys`-style generation: nimbus_<id>_<64 hex>)")
			}
			return "", nil // a single server makes its own key on first start
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if _, _, err := auth.ParseToken(token); err != nil {
		return "", fmt.Errorf("bootstrap token in %s: %w", path, err)
	}
	return token, nil
}

// joinCluster brings a node without state into a cluster: with
// --bootstrap-expect it waits until it sees that many unbootstrapped
// servers and bootstraps with them; otherwise, or once a cluster exists,
// it asks a member to add it. Without peers it bootstraps alone. A node
// without a certificate first gets one (see obtainCertificate).
func joinCluster(ctx context.Context, cp *controlplane.Node, pool *rpc.Pool, ident *pki.Identity, opts ServerOptions, apiAddr, token string, log *slog.Logger) {
	if cp.HasState() {
		return
	}
	if len(opts.Join) == 0 && !opts.Standby {
		if err := cp.Bootstrap([]controlplane.Peer{{ID: cp.ID(), Raft: cp.RaftAddr()}}); err != nil {
			log.Error("bootstrap alone", "err", err)
		}
		return
	}
	credToken := token
	if opts.JoinToken != "" {
		credToken = opts.JoinToken
	}
	cred, err := credentialOf(credToken)
	if err != nil {
		log.Error("no credential to get this server's certificate with", "err", err)
		return
	}
	dtls := discoveryTLS(opts.TLS.Enabled())
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastErr string
	for {
		if cp.LeaderID() != "" && cp.InConfiguration(cp.ID()) {
			return
		}
		var seen []serverHealth
		for _, addr := range opts.Join {
			if addr == apiAddr {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			h, err := discover(dctx, addr, dtls)
			cancel()
			if err == nil && h.ID != cp.ID() {
				seen = append(seen, h)
			}
		}
		if !ident.Ready() {
			if err := obtainCertificate(ctx, ident, seen, cred, opts, apiAddr, log); err != nil && err.Error() != lastErr {
				lastErr = err.Error()
				log.Error("getting this server's certificate", "err", err)
			}
		} else {
			peers := []controlplane.Peer{{ID: cp.ID(), Raft: cp.RaftAddr()}}
			var members []string
			for _, h := range seen {
				if h.Bootstrapped {
					members = append(members, h.Internal)
				} else {
					peers = append(peers, controlplane.Peer{ID: h.ID, Raft: h.Internal})
				}
			}
			if len(members) > 0 {
				if askToJoin(ctx, pool, members, cp, apiAddr, opts.Standby, log) {
					return
				}
			} else if !opts.Standby && opts.BootstrapExpect > 0 && len(peers) >= opts.BootstrapExpect {
				sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
				log.Info("bootstrapping the cluster", "servers", len(peers))
				if err := cp.Bootstrap(peers); err != nil {
					log.Error("bootstrap", "err", err)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// serverIdentity makes sure a server that can have its certificate now
// has it: one it kept, one it signs with the CA key it kept, or, for a
// lone server (no --join), a new cluster CA of its own. A server of a
// cluster without them gets them in joinCluster.
func serverIdentity(ident *pki.Identity, opts ServerOptions, apiAddr string, log *slog.Logger) error {
	hosts := pki.Hosts(opts.Raft, apiAddr)
	if ident.Ready() {
		if role, name := ident.Name(); role != pki.RoleServer || name != opts.NodeID {
			return fmt.Errorf("%s holds the certificate of %s %s, not of server %s", filepath.Join(opts.DataDir, "pki"), role, name, opts.NodeID)
		}
		if ca := ident.CA(); !ident.Covers(hosts) && ca.Key != nil {
			log.Info("the server's addresses changed: issuing it a new certificate", "hosts", hosts)
			return ident.IssueSelf(ca, pki.RoleServer, opts.NodeID, hosts)
		}
		return nil
	}
	if ca := ident.CA(); ca != nil && ca.Key != nil {
		return ident.IssueSelf(ca, pki.RoleServer, opts.NodeID, hosts)
	}
	if len(opts.Join) == 0 && !opts.Standby {
		ca, err := pki.NewCA()
		if err != nil {
			return err
		}
		log.Info("created the cluster CA", "fingerprint", ca.Fingerprint())
		return ident.IssueSelf(ca, pki.RoleServer, opts.NodeID, hosts)
	}
	return nil
}

// obtainCertificate gets a new server its certificate and the cluster CA
// (with its key): by enrolment at a server that has them, with the
// bootstrap key or a server join token; or, while a new cluster forms
// and nobody has a CA, the server with the lowest id of the bootstrap
// set makes it and the others enrol with it. So the cluster has one CA.
func obtainCertificate(ctx context.Context, ident *pki.Identity, seen []serverHealth, cred pki.Credential, opts ServerOptions, apiAddr string, log *slog.Logger) error {
	hosts := pki.Hosts(opts.Raft, apiAddr)
	var errs []error
	for _, h := range seen {
		if h.CA == "" {
			continue
		}
		key, err := pki.NewKey()
		if err != nil {
			return err
		}
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ca, cert, err := pki.Enrol(ectx, h.Internal, cred, pki.RoleServer, opts.NodeID, hosts, key)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ca.Key == nil {
			errs = append(errs, fmt.Errorf("%s sent no CA key", h.ID))
			continue
		}
		if err := ident.Install(ca, cert, key); err != nil {
			return err
		}
		log.Info("got this server's certificate", "from", h.ID, "ca", ca.Fingerprint())
		return nil
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if opts.Standby || opts.BootstrapExpect <= 0 || len(seen)+1 < opts.BootstrapExpect {
		return nil
	}
	for _, h := range seen {
		if h.Bootstrapped || h.ID < opts.NodeID {
			return nil // not ours to make: wait for that server's CA
		}
	}
	ca, err := pki.NewCA()
	if err != nil {
		return err
	}
	log.Info("created the cluster CA", "fingerprint", ca.Fingerprint())
	return ident.IssueSelf(ca, pki.RoleServer, opts.NodeID, hosts)
}

// askToJoin asks each member (at its internal address) in turn to add
// this node; a member that is not the leader refuses, and the leader
// accepts.
func askToJoin(ctx context.Context, pool *rpc.Pool, members []string, cp *controlplane.Node, apiAddr string, standby bool, log *slog.Logger) bool {
	for _, m := range members {
		c, err := pool.Control(m)
		if err != nil {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err = c.Join(jctx, &rpcpb.JoinRequest{Id: cp.ID(), RaftAddress: cp.RaftAddr(), ApiAddress: apiAddr, Nonvoter: standby})
		cancel()
		if err == nil {
			log.Info("joined the cluster", "via", m, "standby", standby)
			return true
		}
	}
	return false
}

// registerSelf records this server's addresses through Raft once there
// is a leader, and again whenever they change.
func registerSelf(ctx context.Context, cp *controlplane.Node, apiAddr string, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	want := state.ServerInfo{ID: cp.ID(), Raft: cp.RaftAddr(), APIAddr: apiAddr}
	for {
		if got, ok := cp.Store().ServerInfo(cp.ID()); !ok || got != want {
			if cp.LeaderID() != "" {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if _, err := cp.Apply(actx, fsm.PutServerType, fsm.PutServer{Server: want}); err != nil {
					log.Debug("registering addresses", "err", err)
				}
				cancel()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leaderDuties runs once per term of office (after the barrier): it
// commits the cluster's bootstrap key, or, for a lone server without one,
// creates an admin key in DATA/admin.token.
func leaderDuties(ctx context.Context, cp *controlplane.Node, token, dataDir string, log *slog.Logger) {
	if token == "" {
		if _, created, err := ensureAdminKey(ctx, cp, dataDir); err != nil {
			log.Error("creating the admin key", "err", err)
		} else if created {
			log.Info("created the admin key", "file", filepath.Join(dataDir, "admin.token"))
		}
		return
	}
	if len(cp.Store().Keys()) > 0 {
		return
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := auth.PutKey(actx, cp, token, "admin", "cluster bootstrap key"); err != nil {
		log.Error("committing the bootstrap key", "err", err)
	}
}

// replicator copies a blob to enough other servers that, with this one,
// a majority of the recorded servers hold it.
func replicator(cp *controlplane.Node, pool *rpc.Pool, apiAddr string) func(ctx context.Context, data []byte) error {
	return func(ctx context.Context, data []byte) error {
		servers := cp.Store().ServerInfos()
		need := len(servers)/2 + 1 - 1 // this server holds it already
		if need <= 0 {
			return nil
		}
		type result struct{ err error }
		results := make(chan result, len(servers))
		sent := 0
		for _, s := range servers {
			if s.ID == cp.ID() || s.APIAddr == apiAddr {
				continue
			}
			sent++
			go func(addr string) {
				c, err := pool.Control(addr)
				if err == nil {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					_, err = c.PutBlob(cctx, &rpcpb.PutBlobRequest{Data: data})
					cancel()
				}
				results <- result{err}
			}(s.Raft)
		}
		var errs []error
		for i := 0; i < sent; i++ {
			r := <-results
			if r.err == nil {
				need--
				if need == 0 {
					return nil
				}
			} else {
				errs = append(errs, r.err)
			}
		}
		return fmt.Errorf("%w (%d of %d servers missing): %v", blob.ErrQuorum, need, len(servers), errors.Join(errs...))
	}
}
