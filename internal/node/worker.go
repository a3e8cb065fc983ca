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
	"time"

	"google.golang.org/grpc"

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
	Token             string // an admin or worker key
	InsecureNoSandbox bool
	IdleTimeout       time.Duration
	PressureLimit     float64 // see worker.AgentConfig
	TLSCA             string  // CA of the servers' certificates: talk to them over TLS
	Prestart          int     // sandboxes per runtime started ahead; 0 for none

	Out      io.Writer
	LogLevel slog.Level
}

// RunWorker runs an execution node until ctx is cancelled: it heartbeats
// to every server, serves invocations over RPC, and drains on the way out.
func RunWorker(ctx context.Context, opts WorkerOptions) error {
	if len(opts.Servers) == 0 {
		return errors.New("a worker needs --servers")
	}
	if opts.Token == "" {
		return errors.New("a worker needs a key: --token or NIMBUS_TOKEN (an admin or worker key)")
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
	var clientTLS *tls.Config
	if opts.TLSCA != "" {
		var err error
		if clientTLS, err = (TLSOptions{CA: opts.TLSCA}).clientConfig(""); err != nil {
			ln.Close()
			return err
		}
	}
	pool := rpc.NewPool(opts.Token, clientTLS)
	defer pool.Close()
	w, err := worker.New(worker.Config{
		ID:          opts.ID,
		DataDir:     filepath.Join(opts.DataDir, "worker"),
		Slots:       opts.Slots,
		IdleTimeout: opts.IdleTimeout,
		Runtimes:    runtimes,
		Executor:    exec,
		Prestart:    max(opts.Prestart, 0),
		Blobs:       worker.RemoteBlobs{Servers: opts.Servers, Pool: pool},
		Log:         log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer w.Close()
	agent := worker.NewAgent(w, worker.AgentConfig{Servers: opts.Servers, Advertise: opts.Advertise, Pool: pool, PressureLimit: opts.PressureLimit, Log: log})
	g := grpc.NewServer(grpc.UnaryInterceptor(agent.AuthInterceptor()), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
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
