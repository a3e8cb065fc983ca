package worker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"nimbus/internal/blob"
	"nimbus/internal/model"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
)

// AgentConfig configures the remote side of a worker.
type AgentConfig struct {
	Servers []string // API addresses of the servers
	// Resolve maps a server's API address to its internal address ("" if
	// not known yet).
	Resolve func(apiAddr string) string
	// Forget drops what Resolve knows of a server that could not be
	// reached, so that the next heartbeat asks it again where it is (a
	// server restarted on a new internal address); nil for never.
	Forget    func(apiAddr string)
	Advertise string // the address servers reach this worker's RPC at
	Pool      *rpc.Pool
	// Interval between heartbeats; 0 for one second.
	Interval time.Duration
	// PressureLimit refuses work while CPU or memory pressure (avg10, %)
	// is above it and the worker is already running something (an idle
	// worker always accepts: the pressure is not its own); 0 for 90,
	// negative to never refuse for pressure.
	PressureLimit float64
	Log           *slog.Logger
}

// Agent serves a worker over RPC and heartbeats it to every server.
type Agent struct {
	rpcpb.UnimplementedWorkerServer
	w      *Worker
	cfg    AgentConfig
	secret string

	mu       sync.Mutex
	draining bool
	pressure [2]float64 // cpu, memory
	// byServer counts the invocations running for each server, by the
	// ID in its certificate.
	byServer map[string]int
}

// NewAgent wraps w. Its secret (sent in heartbeats, required on every call
// from a server) is random per start.
func NewAgent(w *Worker, cfg AgentConfig) *Agent {
	if cfg.Resolve == nil {
		cfg.Resolve = func(s string) string { return s }
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.PressureLimit == 0 {
		cfg.PressureLimit = 90
	}
	b := make([]byte, 32)
	rand.Read(b)
	return &Agent{w: w, cfg: cfg, secret: hex.EncodeToString(b), byServer: map[string]int{}}
}

// Register adds the Worker service to g with the secret check.
func (a *Agent) Register(g *grpc.Server) { rpcpb.RegisterWorkerServer(g, a) }

// AuthInterceptor admits only calls that present this worker's secret.
func (a *Agent) AuthInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		v := md.Get(rpc.WorkerSecretHeader)
		if len(v) == 0 || subtle.ConstantTimeCompare([]byte(v[0]), []byte(a.secret)) != 1 {
			return nil, status.Error(codes.Unauthenticated, "calls to a worker need its secret")
		}
		return h(ctx, req)
	}
}

// StreamAuthInterceptor is AuthInterceptor for streaming calls (Run).
func (a *Agent) StreamAuthInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		v := md.Get(rpc.WorkerSecretHeader)
		if len(v) == 0 || subtle.ConstantTimeCompare([]byte(v[0]), []byte(a.secret)) != 1 {
			return status.Error(codes.Unauthenticated, "calls to a worker need its secret")
		}
		return h(srv, ss)
	}
}

// StartDrain stops the worker taking new invocations; running ones
// finish.
func (a *Agent) StartDrain() {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
}

func (a *Agent) refusal() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.draining:
		return "draining"
	case a.cfg.PressureLimit > 0 && (a.pressure[0] > a.cfg.PressureLimit || a.pressure[1] > a.cfg.PressureLimit) &&
		a.w.Status().InUse > 0:
		return "pressure"
	}
	return ""
}

// Invoke runs one invocation for a server.
func (a *Agent) Invoke(ctx context.Context, req *rpcpb.InvokeRequest) (*rpcpb.InvokeResponse, error) {
	return a.invoke(ctx, req, nil)
}

// InvokeStream runs one invocation for a server that streams its result:
// each chunk goes as it comes, then the response.
func (a *Agent) InvokeStream(req *rpcpb.InvokeRequest, stream rpcpb.Worker_InvokeStreamServer) error {
	var sendErr error
	resp, err := a.invoke(stream.Context(), req, func(b []byte) {
		if sendErr == nil {
			sendErr = stream.Send(&rpcpb.InvokeStreamMessage{Chunk: b})
		}
	})
	if err != nil {
		return err
	}
	return stream.Send(&rpcpb.InvokeStreamMessage{Response: resp})
}

func (a *Agent) invoke(ctx context.Context, req *rpcpb.InvokeRequest, chunk func([]byte)) (*rpcpb.InvokeResponse, error) {
	if r := a.refusal(); r != "" {
		return &rpcpb.InvokeResponse{Refused: r}, nil
	}
	var fn model.Function
	if err := json.Unmarshal(req.Function, &fn); err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad function: "+err.Error())
	}
	if _, server, ok := rpc.Caller(ctx); ok {
		a.mu.Lock()
		a.byServer[server]++
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			if a.byServer[server]--; a.byServer[server] == 0 {
				delete(a.byServer, server)
			}
			a.mu.Unlock()
		}()
	}
	res, err := a.w.Invoke(ctx, Request{RequestID: req.RequestId, Function: fn, Payload: req.Payload,
		SlotWait: time.Duration(req.SlotWaitMs) * time.Millisecond, Queued: req.Queued, Chunk: chunk})
	if errors.Is(err, ErrNoCapacity) {
		return &rpcpb.InvokeResponse{Refused: "capacity"}, nil
	}
	if errors.Is(err, ErrClosed) {
		return &rpcpb.InvokeResponse{Refused: "draining"}, nil
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.InvokeResponse{
		Payload: res.Payload, ErrorType: res.ErrorType, Log: res.Log,
		DurationUs: res.Duration.Microseconds(), BilledMs: res.BilledMS, MaxMemoryMb: int32(res.MaxMemoryMB),
		InitUs: res.InitDuration.Microseconds(), Cold: res.Cold, WorkerId: res.WorkerID,
		StartUnixNano: res.Start.UnixNano(), ProcessesLeft: int32(res.ProcessesLeft), CpuUs: res.CPU.Microseconds(),
	}, nil
}

// Drain serves a server's request to drain this worker, or with undrain
// to take work again.
func (a *Agent) Drain(ctx context.Context, req *rpcpb.DrainRequest) (*rpcpb.DrainResponse, error) {
	if req.Undrain {
		a.mu.Lock()
		a.draining = false
		a.mu.Unlock()
		return &rpcpb.DrainResponse{}, nil
	}
	a.StartDrain()
	return &rpcpb.DrainResponse{}, nil
}

// Provision keeps instances of a function ready (provisioned
// concurrency).
func (a *Agent) Provision(ctx context.Context, req *rpcpb.ProvisionRequest) (*rpcpb.ProvisionResponse, error) {
	var fn model.Function
	if err := json.Unmarshal(req.Function, &fn); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "function: %v", err)
	}
	a.w.Provision(fn, int(req.Count))
	return &rpcpb.ProvisionResponse{}, nil
}

// Prefetch prepares a deployed revision's first cold start (see
// Worker.Prefetch); it answers at once.
func (a *Agent) Prefetch(ctx context.Context, req *rpcpb.PrefetchRequest) (*rpcpb.PrefetchResponse, error) {
	var fn model.Function
	if err := json.Unmarshal(req.Function, &fn); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "function: %v", err)
	}
	a.w.Prefetch(fn)
	return &rpcpb.PrefetchResponse{}, nil
}

// Retire drops a deleted function's instances.
func (a *Agent) Retire(ctx context.Context, req *rpcpb.RetireRequest) (*rpcpb.RetireResponse, error) {
	a.w.Retire(req.Function)
	return &rpcpb.RetireResponse{}, nil
}

// Heartbeats sends a heartbeat to every server every interval until ctx
// ends. It returns an error only if no server ever answered within the
// first attempts' window of ctx.
func (a *Agent) Heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	registered := map[string]bool{}
	lastErr := map[string]string{}
	serverID := map[string]string{} // by address, from the heartbeats' answers
	for {
		a.readPressure()
		for _, s := range a.cfg.Servers {
			addr := a.cfg.Resolve(s)
			if addr == "" {
				continue
			}
			c, err := a.cfg.Pool.Control(addr)
			if err != nil {
				continue
			}
			hb := a.heartbeat(serverID[s])
			hctx, cancel := context.WithTimeout(ctx, a.cfg.Interval)
			resp, err := c.Heartbeat(hctx, hb)
			cancel()
			if err == nil {
				serverID[s] = resp.ServerId
			} else if status.Code(err) == codes.Unavailable && a.cfg.Forget != nil {
				a.cfg.Forget(s)
			}
			switch {
			case err != nil && (registered[s] || lastErr[s] != err.Error()):
				a.cfg.Log.Warn("heartbeat failed", "server", s, "err", err)
				registered[s] = false
				lastErr[s] = err.Error()
			case err == nil && !registered[s]:
				a.cfg.Log.Info("registered with server", "server", s)
				registered[s] = true
				lastErr[s] = ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat is the heartbeat for the server with ID server ("" if not
// known yet).
func (a *Agent) heartbeat(server string) *rpcpb.WorkerHeartbeat {
	st := a.w.Status()
	running, all := a.w.RunningQueued(RunningQueuedLimit(st.Slots))
	a.mu.Lock()
	defer a.mu.Unlock()
	return &rpcpb.WorkerHeartbeat{
		InUseByYou: int32(a.byServer[server]), PerServer: server != "",
		WorkerId: st.ID, Address: a.cfg.Advertise, Secret: a.secret,
		Slots: int32(st.Slots), InUse: int32(st.InUse), Warm: int32(st.WarmInstances),
		Runtimes: a.w.RuntimeNames(), CpuPressure: a.pressure[0], MemoryPressure: a.pressure[1],
		Executor: st.Executor, Draining: a.draining, WarmRevisions: a.w.WarmRevisions(),
		Instances: int32(st.Instances), InstanceMemory: st.InstanceMemory, InstanceMemoryUsed: st.InstanceMemoryUsed,
		Running: running, RunningComplete: all,
	}
}

// readPressure reads "some avg10" of /proc/pressure/{cpu,memory}, where
// the kernel has pressure stall information.
func (a *Agent) readPressure() {
	var p [2]float64
	for i, r := range []string{"cpu", "memory"} {
		b, err := os.ReadFile("/proc/pressure/" + r)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
			if v, ok := strings.CutPrefix(f, "avg10="); ok {
				p[i], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	a.mu.Lock()
	a.pressure = p
	a.mu.Unlock()
}

// RemoteBlobs fetches code packages from the servers, trying each in
// turn, and checks every blob against its digest.
type RemoteBlobs struct {
	Servers []string                    // API addresses
	Resolve func(apiAddr string) string // to internal addresses
	Pool    *rpc.Pool
}

// Get implements BlobSource.
func (r RemoteBlobs) Get(ctx context.Context, digest string) ([]byte, error) {
	var errs []error
	for _, s := range r.Servers {
		addr := s
		if r.Resolve != nil {
			addr = r.Resolve(s)
		}
		if addr == "" {
			errs = append(errs, fmt.Errorf("%s has not answered yet", s))
			continue
		}
		c, err := r.Pool.Control(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := c.GetBlob(ctx, &rpcpb.GetBlobRequest{Digest: digest})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		if blob.Digest(resp.Data) != digest {
			errs = append(errs, fmt.Errorf("%s sent a blob that does not match %s", s, digest))
			continue
		}
		return resp.Data, nil
	}
	return nil, fmt.Errorf("fetch code %s: %w", digest, errors.Join(errs...))
}
