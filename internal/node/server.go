package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"nimbus/internal/deps"
	"nimbus/internal/fsm"
	"nimbus/internal/gateway"
	"nimbus/internal/model"
	"nimbus/internal/pki"
	"nimbus/internal/placement"
	"nimbus/internal/pycheck"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
)

// RunServer runs a control-plane server until ctx is cancelled. It reads
// NodeID, DataDir, Listen and Raft (all required), the options of a
// server of a cluster and those of the API.
func RunServer(ctx context.Context, opts Options) error {
	if opts.NodeID == "" || opts.DataDir == "" || opts.Listen == "" || opts.Raft == "" {
		return errors.New("a server needs --node-id, --data, --listen and --raft")
	}
	if opts.WorkerDeadAfter <= 0 {
		opts.WorkerDeadAfter = 5 * time.Second
	}
	if opts.PromoteAfter <= 0 {
		opts.PromoteAfter = 10 * time.Second
	}
	scanPolicy, err := parseScanPolicy(opts.ScanPolicy)
	if err != nil {
		return err
	}
	if opts.Standby && len(opts.Join) == 0 {
		return errors.New("a --standby server needs --join to reach the cluster")
	}
	log := opts.logger().With("node", opts.NodeID)
	p := newParts(opts, log)
	p.scanPolicy = scanPolicy
	s := &serverParts{parts: p}
	// The API answers from just after it listens, "starting" until the
	// state is loaded (gateway.Starting): a large state takes seconds.
	openAPI, handOverAPI := p.serveAPIEarly(true)
	began := time.Now()
	return p.l.run(ctx, log,
		starting(func(context.Context) error {
			if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
				return err
			}
			s.token, err = clusterToken(opts)
			return err
		}),
		p.dataStores(),
		starting(func(context.Context) (err error) {
			if s.ident, err = pki.Load(filepath.Join(opts.DataDir, "pki")); err != nil {
				return fmt.Errorf("cluster certificate: %w", err)
			}
			return nil
		}),
		p.apiListener(),
		openAPI,
		starting(func(context.Context) error { return serverIdentity(s.ident, opts, p.addr, log) }),
		s.internalPort(),
		step{
			start: func(context.Context) error { s.pool = rpc.NewPool(s.ident); return nil },
			stop:  func(context.Context) error { s.pool.Close(); return nil },
		},
		s.checks(),
		s.controlPlane(),
		s.controlRPC(),
		p.api(func() apiSettings {
			set := p.settings()
			set.checker, set.builder = s.checkers()
			return set
		}, func() *placement.Placer { return placement.New(s.registry) }, s.gatewayConfig),
		handOverAPI,
		p.l.service(func(ctx context.Context) error {
			joinCluster(ctx, p.cp, s.pool, s.ident, opts, p.addr, s.token, log)
			return nil
		}, nil),
		p.l.service(func(ctx context.Context) error { registerSelf(ctx, p.cp, p.addr, log); return nil }, nil),
		p.l.service(func(ctx context.Context) error { reannounce(ctx, p.cp, s.pool, p.addr, log); return nil }, nil),
		p.l.service(func(ctx context.Context) error { catchUp(ctx, p.cp); return nil }, nil),
		p.leadership(func(ctx context.Context) { leaderDuties(ctx, p.cp, s.token, opts.DataDir, log) }),
		p.l.service(func(ctx context.Context) error { s.prober.Run(ctx); return nil }, nil),
		p.l.service(func(ctx context.Context) error {
			controlplane.Autopilot(ctx, p.cp, s.prober, opts.PromoteAfter, log.With("subsystem", "autopilot"))
			return nil
		}, nil),
		banner(func() {
			fmt.Fprintf(opts.out(), "Nimbus server %s is running.\n\n  API:       "+p.scheme()+"://%s\n  Internal:  %s (Raft and internal RPC, mutual TLS)\n  Data:      %s\n\n", opts.NodeID, p.addr, p.cp.RaftAddr(), opts.DataDir)
			log.Info("nimbus server started", "api", p.addr, "raft", p.cp.RaftAddr(), "bootstrap_expect", opts.BootstrapExpect, "join", opts.Join,
				"took", time.Since(began).Round(time.Millisecond))
		}, nil),
	)
}

// serverParts are what only a server of a cluster builds.
type serverParts struct {
	*parts
	token    string // the cluster's bootstrap key, "" if none
	ident    *pki.Identity
	mux      *pki.Mux
	raftAddr net.Addr // advertised
	pool     *rpc.Pool
	prober   *controlplane.Prober
	registry *placement.Registry

	// The internal port's listeners, one per protocol, all made before
	// the port serves (see internalPort).
	raftLn, grpcLn, enrolLn net.Listener

	// What checks builds in the background: closed checked once checker,
	// builder and closeChecker are set (see checkers).
	checked      chan struct{}
	checker      *pycheck.Checker
	builder      *deps.Builder
	closeChecker func()
}

// checks finds Python and builds the sandbox executor that deploys are
// compile-checked in and dependencies built in (serverChecker), in the
// background: process starts and cgroup set-up, hundreds of milliseconds
// that need nothing of the state, so they overlap the loading of the
// Raft state that follows. Stopping waits for them and closes the
// executor.
func (s *serverParts) checks() component {
	return step{
		start: func(context.Context) error {
			s.checked = make(chan struct{})
			go func() {
				defer close(s.checked)
				s.checker, s.builder, s.closeChecker = serverChecker(s.opts, s.scanDir, s.log)
			}()
			return nil
		},
		stop: func(context.Context) error {
			<-s.checked
			s.closeChecker()
			return nil
		},
	}
}

// checkers waits for what checks builds and returns it.
func (s *serverParts) checkers() (*pycheck.Checker, *deps.Builder) {
	<-s.checked
	return s.checker, s.builder
}

// internalPort listens on the internal address (--raft) for Raft, the
// Control service and enrolment, all TLS, told apart by ALPN (pki.Mux).
func (s *serverParts) internalPort() component {
	serve := s.l.service(func(context.Context) error {
		return s.mux.Serve()
	}, func(context.Context) error { return s.mux.Close() })
	return step{
		start: func(ctx context.Context) error {
			opts := s.opts
			adv, err := net.ResolveTCPAddr("tcp", opts.Raft)
			if err == nil && (adv.IP == nil || adv.IP.IsUnspecified()) {
				err = errors.New("it must be an address the other servers can reach, not an unspecified one")
			}
			if err != nil {
				return fmt.Errorf("--raft %s: %w", opts.Raft, err)
			}
			iln, err := net.Listen("tcp", opts.Raft)
			if err != nil {
				return fmt.Errorf("internal port (--raft) %s: %w", opts.Raft, err)
			}
			s.raftAddr = adv
			s.mux = pki.NewMux(iln, s.ident.ServerConfig(true, []string{pki.ProtoRaft, pki.ProtoGRPC}, pki.RoleServer, pki.RoleWorker), s.log.With("subsystem", "internal"))
			// Every protocol's listener exists before the port serves (as
			// pki.Mux requires): a connection that arrives while the Raft
			// state loads waits in its listener until its server starts.
			// Made later, the workers' connections were handshaken, then
			// closed for want of a protocol, and dialled again: with a
			// thousand workers, a storm of TLS handshakes beside the load.
			s.raftLn = s.mux.Listener(pki.ProtoRaft)
			s.grpcLn = s.mux.Listener(pki.ProtoGRPC)
			s.enrolLn = s.mux.Listener(pki.ProtoEnrol)
			return serve.Start(ctx)
		},
		stop: serve.Stop,
	}
}

// controlPlane is the server's Raft node, over mutual TLS on the
// internal port.
func (s *serverParts) controlPlane() component {
	return step{
		start: func(context.Context) error {
			stream := &raftStream{Listener: s.raftLn, advertise: s.raftAddr, id: s.ident, log: s.log.With("subsystem", "raft")}
			transport := raft.NewNetworkTransport(stream, 3, 10*time.Second, os.Stderr)
			cp, err := controlplane.Start(controlplane.Config{
				NodeID: s.opts.NodeID, DataDir: s.opts.DataDir, Transport: transport, RPC: s.pool,
				HeartbeatTimeout: s.opts.RaftHeartbeatTimeout,
				Log:              s.log.With("subsystem", "controlplane"),
			})
			s.cp = cp
			return err
		},
		stop: func(context.Context) error { return s.cp.Shutdown() },
	}
}

// controlRPC serves the Control service (to servers and workers) and
// enrolment on the internal port, with the worker registry that the
// workers' heartbeats feed.
func (s *serverParts) controlRPC() component {
	var grpcServer *grpc.Server
	control := s.l.service(func(context.Context) error {
		return grpcServer.Serve(s.grpcLn)
	}, func(context.Context) error { grpcServer.Stop(); return nil })
	enrol := s.l.service(func(context.Context) error {
		srv := &pki.EnrolServer{Identity: s.ident, Authorize: enrolAuthorizer(s.cp.Store(), s.token), Log: s.log.With("subsystem", "enrol")}
		return srv.Serve(s.enrolLn)
	}, func(context.Context) error { return s.enrolLn.Close() })
	return step{
		start: func(ctx context.Context) error {
			s.prober = controlplane.NewProber(s.cp)
			s.registry = placement.NewRegistry(s.pool, s.opts.WorkerDeadAfter, s.opts.WorkerForgetAfter, s.log.With("subsystem", "placement"))
			svc := controlplane.NewService(s.cp, s.addr, s.blobs, s.registry)
			grpcServer = grpc.NewServer(append(rpc.ServerOptions(), grpc.Creds(rpc.Handshaken()), grpc.UnaryInterceptor(svc.AuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))...)
			svc.Register(grpcServer)
			control.Start(ctx)
			return enrol.Start(ctx)
		},
		stop: func(ctx context.Context) error {
			return errors.Join(enrol.Stop(ctx), control.Stop(ctx))
		},
	}
}

// gatewayConfig adds what only a server's gateway has.
func (s *serverParts) gatewayConfig(c *gateway.Config) {
	cp, ident := s.cp, s.ident
	c.ReplicateBlob = replicator(cp, s.pool)
	c.FetchBlob = blobFetcher(cp, s.pool)
	c.PeerView = s.prober.Overlay
	c.NotMember = s.prober.NotMember
	c.Membership = &membership{cp: cp, pool: s.pool, registry: s.registry, discoveryTLS: discoveryTLS(s.opts.TLS.Enabled())}
	c.Health = func() any {
		h := serverHealth{ID: cp.ID(), Internal: cp.RaftAddr(), Bootstrapped: cp.HasState()}
		if ca := ident.CA(); ca != nil {
			h.CA = ca.Fingerprint()
		}
		return h
	}
}

// clusterToken reads the bootstrap token file, or else DATA/admin.token.
func clusterToken(opts Options) (string, error) {
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
func joinCluster(ctx context.Context, cp *controlplane.Node, pool *rpc.Pool, ident *pki.Identity, opts Options, apiAddr, token string, log *slog.Logger) {
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
func serverIdentity(ident *pki.Identity, opts Options, apiAddr string, log *slog.Logger) error {
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
func obtainCertificate(ctx context.Context, ident *pki.Identity, seen []serverHealth, cred pki.Credential, opts Options, apiAddr string, log *slog.Logger) error {
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

// catchUp brings the server's state up to date with the cluster's once
// after its start (controlplane.Node.CaughtUp), so that it serves without
// waiting for a request to start it.
func catchUp(ctx context.Context, cp *controlplane.Node) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cp.CaughtUp() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// registerSelf records this server's addresses through Raft once there
// is a leader, and again whenever they change.
func registerSelf(ctx context.Context, cp *controlplane.Node, apiAddr string, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	want := model.ServerInfo{ID: cp.ID(), Raft: cp.RaftAddr(), APIAddr: apiAddr}
	for {
		if got, ok := cp.Store().ServerInfo(cp.ID()); !ok || got != want {
			if cp.LeaderID() != "" {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if _, err := fsm.Apply(actx, cp, fsm.PutServer{Server: want}); err != nil {
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

// blobFetcher fetches a code package this server lacks from the other
// servers, one after another, checking its digest: a deploy replicates a
// package to a majority only, and the console reads a revision's code on
// whatever server it is served by.
func blobFetcher(cp *controlplane.Node, pool *rpc.Pool) func(ctx context.Context, digest string) ([]byte, error) {
	return func(ctx context.Context, digest string) ([]byte, error) {
		var errs []error
		for _, s := range cp.MemberAddrs() {
			if s.ID == cp.ID() {
				continue
			}
			c, err := pool.Control(s.Addr)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := c.GetBlob(cctx, &rpcpb.GetBlobRequest{Digest: digest})
			cancel()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", s.ID, err))
			case blob.Digest(resp.Data) != digest:
				errs = append(errs, fmt.Errorf("%s sent a package that does not match %s", s.ID, digest))
			default:
				return resp.Data, nil
			}
		}
		return nil, fmt.Errorf("code package %s is on no server that answered: %w", digest, errors.Join(errs...))
	}
}

// replicator copies a blob to enough other servers that, with this one,
// a majority of the servers in the Raft configuration hold it.
func replicator(cp *controlplane.Node, pool *rpc.Pool) func(ctx context.Context, data []byte) error {
	return func(ctx context.Context, data []byte) error {
		// The quorum is the Raft configuration's, whose addresses are
		// known from the moment a server joins (the servers' announced
		// information may lag behind it: counting only those could make
		// one copy look like a majority).
		servers := cp.MemberAddrs()
		need := len(servers)/2 + 1 - 1 // this server holds it already
		if need <= 0 {
			return nil
		}
		type result struct{ err error }
		results := make(chan result, len(servers))
		sent := 0
		for _, s := range servers {
			if s.ID == cp.ID() {
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
			}(s.Addr)
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
