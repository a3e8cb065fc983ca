package node

import (
	"context"
	"io"
	"log/slog"
	"nimbus/internal/deps"
	"nimbus/internal/model"
	svc "nimbus/internal/service"
	"os"
	"time"
)

// Options configure a node: `nimbus dev`, `nimbus server` and `nimbus
// worker` read the fields that concern them (see each Run function).
type Options struct {
	// NodeID names the node: a server's --node-id (required), a worker's
	// --id (default worker-<listen port>); nimbus dev is "dev".
	NodeID  string
	DataDir string
	// Listen is the API address (dev, server) or the RPC address (worker),
	// HOST:PORT; port 0 picks a free one.
	Listen string
	Out    io.Writer // where the banner is printed; default stdout
	// LogLevel for the node's own log on stderr; default info.
	LogLevel slog.Level

	// The API (dev, server).

	// SMTPAddr (host:port) and SMTPFrom configure e-mail notifications.
	SMTPAddr, SMTPFrom string
	// Retention bounds the invocation records kept (zero: the default,
	// model.DefaultRetention). It travels in each record batch this
	// server commits, so servers should agree on it.
	Retention model.Retention
	// BudgetCheckEvery is how often the leader checks the namespaces'
	// budgets (0: every 30 s).
	BudgetCheckEvery time.Duration
	// Backups, when Every is set, makes the leader save a backup into
	// Dir every Every, keeping the newest Keep.
	Backups svc.BackupSchedule
	// RateLimit is the default requests per second per key (0: none).
	RateLimit float64
	// Pprof serves Go's profiles under /debug/pprof/ to admin keys.
	Pprof bool
	// LambdaRegion is the region of the Lambda API's ARNs ("":
	// gateway.DefaultLambdaRegion).
	LambdaRegion string
	// Scaling shapes the scaling signal (GET /v1/scaling).
	Scaling svc.ScalingPolicy
	// Timeouts bound slow clients.
	Timeouts HTTPTimeouts
	// TLS serves the API over TLS (dev, server); a worker uses its CA to
	// read the servers' /healthz. Internal traffic is always mutual TLS
	// with the cluster CA's certificates, on the Raft port.
	TLS TLSOptions
	// ScanPolicy is off, warn (default) or block[:SEVERITY] for code
	// scanning with Bandit at deploy.
	ScanPolicy string
	// PipIndex is where dependency builds fetch packages from (the zero
	// value: pip's default index); PipWheel the pip they run ("": the
	// runtime's own, or the host's shared wheel).
	PipIndex deps.Index
	PipWheel string

	// Running instances (dev, worker).

	// Slots: concurrent invocations; 0 for four per core (dev) or one
	// per core (worker).
	Slots int
	// IdleTimeout retires idle instances; 0 for 10 minutes.
	IdleTimeout time.Duration
	// InstanceMemory is the memory budget of the instances, in bytes
	// (see worker.Config.InstanceMemory); 0 for a quarter of the host's
	// memory.
	InstanceMemory int64
	// Runtimes, when set, are the Python interpreters instances run with
	// (each PATH or NAME=PATH; python.Given), instead of those found on
	// the host (python.Discover).
	Runtimes []string
	// InsecureNoSandbox runs instances as plain process groups, without
	// namespaces, cgroups or seccomp. For hosts that cannot build
	// sandboxes; never for untrusted code.
	InsecureNoSandbox bool
	// Prestart is the number of sandboxes per runtime started ahead of
	// need (see worker.Config.Prestart); 0 for none.
	Prestart int
	// PrestartMost bounds how far a stock grows when cold starts are
	// expected (worker.Config.PrestartMost); 0 for the default.
	PrestartMost int
	// FreezeAfter is how long an idle instance runs on before it is
	// frozen (see worker.Config.FreezeAfter): 0 at once, negative never.
	FreezeAfter time.Duration
	// FollowInstances, when not nil, makes the process-wide settings
	// that follow the load of this node's instances, sampling busy (the
	// slots in use) until ctx ends (cmd/nimbus passes
	// tuning.LeaveCPUsToInstances). nil leaves the runtime alone.
	FollowInstances func(ctx context.Context, busy func() int)

	// A server of a cluster.

	Raft string // Raft transport and internal RPC, HOST:PORT
	// BootstrapExpect makes the servers of a new cluster wait until they
	// see this many of themselves (through Join), then bootstrap together.
	BootstrapExpect int
	Join            []string // API addresses of other servers
	// RaftHeartbeatTimeout is how long a follower hears nothing from the
	// leader before it calls an election (randomised up to twice that);
	// 0 for controlplane's default.
	RaftHeartbeatTimeout time.Duration
	// BootstrapTokenFile holds the cluster's initial admin key, which the
	// servers also use between themselves.
	BootstrapTokenFile string
	// JoinToken lets a new node get its certificate: for a server, a
	// server join token from `nimbus cluster token create --role server`
	// (instead of the bootstrap key); for a worker, a worker join token.
	JoinToken string
	// WorkerDeadAfter: a worker silent this long is offered nothing; 0 for
	// five heartbeats (5 s).
	WorkerDeadAfter time.Duration
	// WorkerForgetAfter: a worker silent this long leaves the registry and
	// the cluster view (shown dead until then), and the connection to it
	// closes; 0 for placement.DefaultForgetAfter.
	WorkerForgetAfter time.Duration
	// Standby joins as a non-voter, promoted by the leader when a voter
	// has been dead for PromoteAfter (default 10 s).
	Standby      bool
	PromoteAfter time.Duration

	// A worker.

	Servers   []string // API addresses of the servers
	Advertise string   // the address servers reach it at; default Listen
	Token     string   // an admin or worker key, to enrol with
	// PressureLimit: see worker.AgentConfig.
	PressureLimit float64
}

func (o *Options) out() io.Writer {
	if o.Out == nil {
		return os.Stdout
	}
	return o.Out
}

// logger is the node's log on stderr.
func (o *Options) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.LogLevel}))
}
