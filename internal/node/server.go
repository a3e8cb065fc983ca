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
	"nimbus/internal/notify"
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
	// WorkerDeadAfter: a worker silent this long is offered nothing; 0 for
	// five heartbeats (5 s).
	WorkerDeadAfter time.Duration
	// Standby joins as a non-voter, promoted by the leader when a voter
	// has been dead for PromoteAfter (default 10 s).
	Standby      bool
	PromoteAfter time.Duration
	// SMTPAddr (host:port) and SMTPFrom configure e-mail notifications.
	SMTPAddr, SMTPFrom string
	// RateLimit is the default requests per second per key (0: none).
	RateLimit float64
	// TLS serves the API and the internal RPC over TLS.
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
	blobs, err := blob.Open(filepath.Join(opts.DataDir, "blobs"))
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	apiAddr := ln.Addr().String()
	raftAdvertise, err := net.ResolveTCPAddr("tcp", opts.Raft)
	if err != nil {
		ln.Close()
		return fmt.Errorf("--raft %s: %w", opts.Raft, err)
	}
	transport, err := raft.NewTCPTransport(opts.Raft, raftAdvertise, 3, 10*time.Second, os.Stderr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("raft transport on %s: %w", opts.Raft, err)
	}
	var serverTLS, clientTLS *tls.Config
	if opts.TLS.Enabled() {
		var certFile string
		if serverTLS, certFile, err = opts.TLS.serverConfig(opts.DataDir, apiAddr); err != nil {
			ln.Close()
			return err
		}
		if clientTLS, err = opts.TLS.clientConfig(certFile); err != nil {
			ln.Close()
			return err
		}
	}
	pool := rpc.NewPool(token, clientTLS)
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
	registry := placement.NewRegistry(pool, opts.WorkerDeadAfter, log.With("subsystem", "placement"))
	svc := controlplane.NewService(cp, apiAddr, token, blobs, registry)
	grpcServer := grpc.NewServer(grpc.UnaryInterceptor(svc.AuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	svc.Register(grpcServer)

	placer := placement.New(registry)
	gw, async := newAPI(cp, placer, blobs, logs, apiSettings{addr: apiAddr, rateLimit: opts.RateLimit, scanPolicy: scanPolicy,
		smtp: notify.SMTP{Addr: opts.SMTPAddr, From: opts.SMTPFrom}}, log, func(c *gateway.Config) {
		c.ReplicateBlob = replicator(cp, pool, apiAddr)
		c.PeerView = prober.Overlay
		c.Membership = &membership{cp: cp, pool: pool, registry: registry}
	})
	defer async.enqueuer.Close()
	defer gw.Close()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if serverTLS != nil {
		protocols.SetHTTP2(true) // gRPC between servers and workers, over TLS
		ln = tls.NewListener(ln, serverTLS)
	} else {
		protocols.SetUnencryptedHTTP2(true) // gRPC between servers and workers
	}
	srv := &http.Server{
		Handler:           withGRPC(grpcServer, gw),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go joinCluster(runCtx, cp, pool, opts, apiAddr, log)
	go registerSelf(runCtx, cp, apiAddr, log)
	go runLeaderServices(runCtx, cp, async, log.With("subsystem", "leader"), func(ctx context.Context) {
		leaderDuties(ctx, cp, token, opts.DataDir, log)
	})
	go prober.Run(runCtx)
	go controlplane.Autopilot(runCtx, cp, prober, opts.PromoteAfter, log.With("subsystem", "autopilot"))

	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(opts.Out, "Nimbus server %s is running.\n\n  API:   "+scheme+"://%s\n  Raft:  %s\n  Data:  %s\n\n", opts.NodeID, apiAddr, cp.RaftAddr(), opts.DataDir)
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

// withGRPC sends HTTP/2 gRPC requests to g and everything else to h.
func withGRPC(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clusterToken reads the bootstrap token file, or else DATA/admin.token.
func clusterToken(opts ServerOptions) (string, error) {
	path := opts.BootstrapTokenFile
	if path == "" {
		path = filepath.Join(opts.DataDir, "admin.token")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if opts.BootstrapExpect > 1 || len(opts.Join) > 0 {
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
// it asks a member to add it. Without peers it bootstraps alone.
func joinCluster(ctx context.Context, cp *controlplane.Node, pool *rpc.Pool, opts ServerOptions, apiAddr string, log *slog.Logger) {
	if cp.HasState() {
		return
	}
	if len(opts.Join) == 0 && !opts.Standby {
		if err := cp.Bootstrap([]controlplane.Peer{{ID: cp.ID(), Raft: cp.RaftAddr()}}); err != nil {
			log.Error("bootstrap alone", "err", err)
		}
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if cp.LeaderID() != "" && cp.InConfiguration(cp.ID()) {
			return
		}
		peers := []controlplane.Peer{{ID: cp.ID(), Raft: cp.RaftAddr()}}
		var members []string
		for _, addr := range opts.Join {
			if addr == apiAddr {
				continue
			}
			c, err := pool.Control(addr)
			if err != nil {
				continue
			}
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := c.ServerInfo(ictx, &rpcpb.ServerInfoRequest{})
			cancel()
			if err != nil || info.Id == cp.ID() {
				continue
			}
			if info.Bootstrapped {
				members = append(members, addr)
			} else {
				peers = append(peers, controlplane.Peer{ID: info.Id, Raft: info.RaftAddress})
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
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// askToJoin asks each member in turn to add this node; a member that is
// not the leader refuses, and the leader accepts.
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
			}(s.APIAddr)
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
