// Command sim runs many simulated Nimbus workers in one process, for
// bench/scale. Each is a real worker.Agent around a real worker.Worker:
// its own ID, its own certificate of the cluster CA (enrolled with the
// token, as `nimbus worker` enrols), its own gRPC listener on 127.0.0.1,
// heartbeats every second to every server. Only the executor is not real:
// noopExecutor answers every invocation with null at once, without a
// process or a sandbox. This binary is built by bench/scale only; nothing
// of it is in the nimbus binary.
//
//	sim -servers A1,A2,A3 -token-file F -data DIR -count 250 -first 0
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"nimbus/internal/auth"
	"nimbus/internal/pki"
	"nimbus/internal/rpc"
	"nimbus/internal/runtime/python"
	"nimbus/internal/worker"
)

func main() {
	var (
		servers, tokenFile, data, prefix string
		count, first, slots, parallel    int
		memory                           int64
	)
	flag.StringVar(&servers, "servers", "", "the servers' API addresses, comma-separated")
	flag.StringVar(&tokenFile, "token-file", "", "file holding the credential to enrol with (bootstrap token or key)")
	flag.StringVar(&data, "data", "", "directory for the workers' data (one subdirectory each)")
	flag.StringVar(&prefix, "prefix", "sim", "worker IDs are PREFIX<number>")
	flag.IntVar(&count, "count", 250, "workers to run")
	flag.IntVar(&first, "first", 0, "number of the first worker")
	flag.IntVar(&slots, "slots", 2, "slots per worker")
	flag.IntVar(&parallel, "enrol-parallel", 8, "enrolments at once")
	flag.Int64Var(&memory, "instance-memory", 64<<20, "each worker's instance memory budget, bytes (a no-op instance counts at 16 MiB)")
	flag.Parse()
	if servers == "" || tokenFile == "" || data == "" || count < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, log, strings.Split(servers, ","), tokenFile, data, prefix, count, first, slots, parallel, memory); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, servers []string, tokenFile, data, prefix string, count, first, slots, parallel int, memory int64) error {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	cred, err := credentialOf(string(tok))
	if err != nil {
		return err
	}
	internal := map[string]string{}
	for _, s := range servers {
		addr, err := internalAddr(ctx, s)
		if err != nil {
			return err
		}
		internal[s] = addr
	}
	resolve := func(s string) string { return internal[s] }
	rts, err := python.Discover()
	if err != nil {
		return fmt.Errorf("the workers need a Python runtime to offer: %w", err)
	}

	t0 := time.Now()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, parallel)
		mu       sync.Mutex
		errs     []error
		enrolled atomic.Int64
		started  []*simWorker
	)
	for i := range count {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := fmt.Sprintf("%s%04d", prefix, first+i)
			sw, err := startWorker(ctx, log, id, filepath.Join(data, id), servers, internal[servers[i%len(servers)]], resolve, cred, rts, slots, memory)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				return
			}
			enrolled.Add(1)
			started = append(started, sw)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d workers did not start, first: %w", len(errs), count, errs[0])
	}
	// One line the benchmark reads: how long enrolment and start took.
	fmt.Printf("SIM-READY workers=%d enrol_and_start_ms=%d\n", enrolled.Load(), time.Since(t0).Milliseconds())
	<-ctx.Done()
	for _, sw := range started {
		sw.stop()
	}
	return nil
}

// simWorker is one simulated worker's running parts.
type simWorker struct {
	g    *grpc.Server
	w    *worker.Worker
	pool *rpc.Pool
	stop func()
}

// startWorker enrols worker id through the server at enrolAt (unless its
// data directory holds its certificate already), then serves it and
// starts its heartbeats until ctx ends.
func startWorker(ctx context.Context, log *slog.Logger, id, dir string, servers []string, enrolAt string, resolve func(string) string,
	cred pki.Credential, rts []python.Runtime, slots int, memory int64) (*simWorker, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	adv := ln.Addr().String()
	ident, err := pki.Load(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	if role, name := ident.Name(); !ident.Ready() || role != pki.RoleWorker || name != id {
		key, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ca, cert, err := pki.Enrol(ectx, enrolAt, cred, pki.RoleWorker, id, pki.Hosts(adv), key)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("enrol: %w", err)
		}
		if err := ident.Install(ca, cert, key); err != nil {
			return nil, err
		}
	}
	pool := rpc.NewPool(ident)
	wlog := log.With("worker", id)
	w, err := worker.New(worker.Config{
		ID: id, DataDir: dir, Slots: slots, InstanceMemory: memory, Runtimes: rts,
		Executor: noopExecutor{}, FreezeAfter: -1, KeepCode: 1,
		Blobs: worker.RemoteBlobs{Servers: servers, Resolve: resolve, Pool: pool}, Log: wlog,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Pressure is the machine's, shared by every simulated worker and the
	// servers: a simulated worker never refuses for it.
	agent := worker.NewAgent(w, worker.AgentConfig{Servers: servers, Resolve: resolve, Advertise: adv, Pool: pool, PressureLimit: -1, Log: wlog})
	g := grpc.NewServer(append(rpc.ServerOptions(), grpc.Creds(credentials.NewTLS(ident.ServerConfig(false, []string{pki.ProtoGRPC}, pki.RoleServer))),
		grpc.UnaryInterceptor(agent.AuthInterceptor()), grpc.StreamInterceptor(agent.StreamAuthInterceptor()))...)
	agent.Register(g)
	go g.Serve(ln)
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { agent.Heartbeats(hctx); close(done) }()
	return &simWorker{g: g, w: w, pool: pool, stop: func() {
		cancel()
		<-done
		g.Stop()
		w.Close()
		pool.Close()
	}}, nil
}

// credentialOf is what enrolment proves of a token: its id and the hash
// of its secret (as internal/node does for `nimbus worker`).
func credentialOf(token string) (pki.Credential, error) {
	id, secret, err := auth.ParseToken(strings.TrimSpace(token))
	if err != nil {
		return pki.Credential{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	return pki.Credential{ID: id, Hash: sum[:]}, nil
}

// internalAddr reads a server's internal address from its /healthz.
func internalAddr(ctx context.Context, api string) (string, error) {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct {
				Server *struct {
					Internal string `json:"internal"`
				} `json:"server"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(b, &body) == nil && body.Server != nil && body.Server.Internal != "" {
				return body.Server.Internal, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
