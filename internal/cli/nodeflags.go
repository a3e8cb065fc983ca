package cli

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"nimbus/internal/controlplane"
	"nimbus/internal/gateway"
	"nimbus/internal/node"
	svc "nimbus/internal/service"
)

// nodeKind is the node a command starts.
type nodeKind int

const (
	devNode nodeKind = iota
	serverNode
	workerNode
)

// nodeFlags are the flags of `nimbus dev`, `server` and `worker`, declared
// once into one node.Options: each command gets the flags of its kind,
// with the names, defaults and help they have always had.
type nodeFlags struct {
	kind                     nodeKind
	opts                     node.Options
	freeze                   *freezeFlags // dev, worker
	joinToken, joinTokenFile string       // server, worker
}

func addNodeFlags(f *pflag.FlagSet, kind nodeKind) *nodeFlags {
	n := &nodeFlags{kind: kind}
	o := &n.opts
	switch kind {
	case devNode:
		f.StringVar(&o.DataDir, "data", ".nimbus", "data directory")
		f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "API address HOST:PORT")
		f.IntVar(&o.Slots, "slots", 0, "worker slots (0: four per core)")
		f.DurationVar(&o.IdleTimeout, "idle-timeout", 10*time.Minute, "warm instances idle this long stop (provisioned ones stay)")
	case serverNode:
		f.StringVar(&o.NodeID, "node-id", "", "this server's ID (required)")
		f.StringVar(&o.DataDir, "data", "", "data directory (required)")
		f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "API address HOST:PORT (clients, the dashboard, /healthz)")
		f.StringVar(&o.Raft, "raft", "", "internal address HOST:PORT: Raft, the internal RPC (servers and workers) and enrolment, mutual TLS only (required)")
		f.IntVar(&o.BootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once this many servers see each other")
		f.StringSliceVar(&o.Join, "join", nil, "API addresses of other servers, HOST:PORT,...")
		f.DurationVar(&o.RaftHeartbeatTimeout, "raft-heartbeat-timeout", controlplane.DefaultHeartbeatTimeout,
			"a follower that hears nothing from the leader this long (randomised up to twice that) calls an election; the same on every server")
		f.StringVar(&o.BootstrapTokenFile, "bootstrap-token-file", "", "file holding the cluster's shared admin key")
		f.StringVar(&n.joinToken, "join-token", "", "a server join token (nimbus cluster token create --role server) to get this server's certificate with")
		f.DurationVar(&o.WorkerDeadAfter, "worker-dead-after", 0, "a worker silent this long is dead (default 5s)")
		f.DurationVar(&o.WorkerForgetAfter, "worker-forget-after", 0, "a worker silent this long leaves the cluster view; until then it shows as dead (default 5m)")
		f.StringVar(&o.TLS.CA, "tls-ca", "", "no effect: internal traffic is mutual TLS with the cluster's own CA")
		f.MarkDeprecated("tls-ca", "internal traffic is mutual TLS with the cluster's own CA; the flag has no effect")
		f.BoolVar(&o.Standby, "standby", false, "join as a non-voter, promoted when a voter has been dead for --promote-after")
		f.DurationVar(&o.PromoteAfter, "promote-after", 0, "how long a voter may be dead before a standby replaces it (default 10s)")
	case workerNode:
		f.StringVar(&o.NodeID, "id", "", "worker ID (default worker-<port>)")
		f.StringSliceVar(&o.Servers, "servers", nil, "API addresses of the servers, HOST:PORT,... (required)")
		f.StringVar(&o.DataDir, "data", ".nimbus-worker", "data directory")
		f.StringVar(&o.Listen, "listen", "127.0.0.1:0", "RPC address HOST:PORT")
		f.StringVar(&o.Advertise, "advertise", "", "address the servers reach this worker at (default --listen)")
		f.IntVar(&o.Slots, "slots", 0, "concurrent invocations (default one per core)")
		f.StringVar(&o.TLS.CA, "tls-ca", "", "CA of the servers' API certificates, when their API is HTTPS")
		f.StringVar(&n.joinToken, "join-token", "", "a join token (nimbus cluster token create) to get this worker's certificate with, on its first start")
		f.Float64Var(&o.PressureLimit, "pressure-limit", 90, "refuse new work while busy and CPU or memory pressure (PSI avg10, %) is above this; negative: never")
	}
	if kind != devNode {
		help := "file holding a join token"
		if kind == serverNode {
			help = "file holding a server join token"
		}
		f.StringVar(&n.joinTokenFile, "join-token-file", "", help)
	}
	if kind != workerNode { // the API
		tlsCert, tlsDir := "serve the API over TLS with this certificate (PEM)", "DIR"
		if kind == serverNode {
			tlsCert, tlsDir = "serve the API over TLS with this certificate (PEM; Raft and internal RPC always use the cluster CA's mutual TLS)", "DATA"
		}
		f.StringVar(&o.TLS.Cert, "tls-cert", "", tlsCert)
		f.StringVar(&o.TLS.Key, "tls-key", "", "the certificate's key (PEM)")
		f.BoolVar(&o.TLS.SelfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate made in "+tlsDir+"/tls")
		f.StringVar(&o.ScanPolicy, "scan-policy", "warn", "code scanning with Bandit at deploy: off, warn, or block[:LOW|MEDIUM|HIGH]")
		f.StringVar(&o.PipIndex.URL, "pip-index-url", "", "package index (PEP 503 simple API) dependency builds fetch wheels from (default: pip's)")
		f.StringArrayVar(&o.PipIndex.ExtraURLs, "pip-extra-index-url", nil, "a further package index; repeat for more")
		f.StringArrayVar(&o.PipIndex.FindLinks, "pip-find-links", nil, "a directory or page of wheels dependency builds may use; repeat for more")
		f.BoolVar(&o.PipIndex.NoIndex, "pip-no-index", false, "dependency builds use the --pip-find-links directories alone, no index")
		f.StringArrayVar(&o.PipIndex.TrustedHosts, "pip-trusted-host", nil, "an index host served over plain HTTP or with a certificate not to check; repeat for more")
		f.StringVar(&o.PipWheel, "pip-wheel", "", "the pip wheel dependency builds run (default: the runtime's bundled one, or the host's python3-pip-whl)")
		f.Float64Var(&o.RateLimit, "rate-limit", 0, "default requests per second per API key (0: no limit)")
		f.BoolVar(&o.Pprof, "enable-pprof", false, "serve Go's profiles (CPU, heap, goroutines) under /debug/pprof/ on the API, to admin keys")
		f.StringVar(&o.LambdaRegion, "lambda-region", gateway.DefaultLambdaRegion, "the AWS region of the Lambda API's ARNs (clients may sign for any region)")
		f.DurationVar(&o.Timeouts.Header, "header-timeout", 10*time.Second, "time a client has to send a request's headers")
		f.DurationVar(&o.Timeouts.Body, "body-timeout", 30*time.Second, "time a client has to send a request's body, plus its size at 100 KB/s")
		f.StringVar(&o.SMTPAddr, "smtp-addr", "", "SMTP relay host:port for e-mail notifications")
		f.StringVar(&o.SMTPFrom, "smtp-from", "nimbus@localhost", "sender address of e-mail notifications")
		retentionFlags(f, &o.Retention)
		f.DurationVar(&o.BudgetCheckEvery, "budget-check-every", 30*time.Second, "how often the leader checks the namespaces' budgets")
		f.DurationVar(&o.Backups.Every, "backup-every", 0, "save a backup of the cluster this often, on the leader (0: never; see nimbus operator snapshot)")
		f.StringVar(&o.Backups.Dir, "backup-dir", "", "the directory scheduled backups go to (default DATA/backups)")
		f.IntVar(&o.Backups.Keep, "backup-keep", 24, "how many scheduled backups to keep (the oldest go first)")
		f.IntVar(&o.Scaling.MinWorkers, "scaling-min-workers", 1, "the fewest workers the scaling signal (GET /v1/scaling) asks for")
		f.IntVar(&o.Scaling.MaxWorkers, "scaling-max-workers", 0, "the most workers the scaling signal asks for (0: no bound)")
		f.Float64Var(&o.Scaling.TargetUtilisation, "scaling-target", svc.DefaultTargetUtilisation, "the share of the workers' slots (0 < t <= 1) the scaling signal wants the load to fill")
	}
	if kind != serverNode { // instances
		f.IntVar(&o.Prestart, "prestart", 2, "sandboxes per runtime started ahead of need, to speed cold starts (0: none)")
		f.IntVar(&o.PrestartMost, "prestart-most", 32, "the most sandboxes a runtime's stock grows to while cold starts are expected (deployed functions not started yet, recent cold starts); at least --prestart")
		f.Var((*byteSize)(&o.InstanceMemory), "instance-memory", "memory the instances may hold, idle and busy, before the least recently used idle ones stop: a size such as 2GiB, 512MiB or a plain number of MB (default a quarter of the host's memory)")
		n.freeze = addFreezeFlags(f)
		f.StringArrayVar(&o.Runtimes, "runtime", nil, "a Python interpreter to offer, as NAME=PATH (python3.12=/opt/python3.12/bin/python3.12) or PATH; repeat for more; given, only these are offered (default: those found on the host); the provided runtime is offered either way")
		f.BoolVar(&o.InsecureNoSandbox, "insecure-no-sandbox", false, "INSECURE: run functions as plain processes, without namespaces, cgroups or seccomp (trusted code only)")
	}
	return n
}

// options checks the flags and returns the node's options, with paths
// resolved and the values that come from the environment.
func (n *nodeFlags) options(a *app, cmd *cobra.Command) (node.Options, error) {
	o := n.opts
	if n.kind != workerNode {
		if err := checkRetention(o.Retention); err != nil {
			return o, err
		}
		o.Retention = withDefaultMetricsUnset(o.Retention)
		if err := checkScaling(o.Scaling); err != nil {
			return o, err
		}
		if !lambdaRegionRe.MatchString(o.LambdaRegion) {
			return o, usagef("--lambda-region %q is not an AWS region name such as us-east-1 or eu-west-3", o.LambdaRegion)
		}
	}
	o.DataDir = a.path(o.DataDir)
	o.Out = a.env.Stdout
	o.FollowInstances = a.env.FollowInstances
	if n.kind != devNode {
		t, err := a.joinToken(n.joinToken, n.joinTokenFile)
		if err != nil {
			return o, err
		}
		o.JoinToken = t
	}
	if n.freeze != nil {
		after, err := n.freeze.after(a, cmd.Flags())
		if err != nil {
			return o, err
		}
		o.FreezeAfter = after
	}
	return o, nil
}

// checkScaling refuses scaling bounds that bound nothing.
func checkScaling(p svc.ScalingPolicy) error {
	switch {
	case p.MinWorkers < 1:
		return usagef("--scaling-min-workers must be 1 or more")
	case p.MaxWorkers < 0 || (p.MaxWorkers > 0 && p.MaxWorkers < p.MinWorkers):
		return usagef("--scaling-max-workers must be 0 (no bound) or at least --scaling-min-workers")
	case !(p.TargetUtilisation > 0 && p.TargetUtilisation <= 1):
		return usagef("--scaling-target must be above 0 and at most 1 (0.7: the load fills 70%% of the slots)")
	}
	return nil
}

// lambdaRegionRe is what an AWS region's name looks like.
var lambdaRegionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// runNode runs a node until the command's context ends; that ending is
// not an error.
func (a *app) runNode(cmd *cobra.Command, run func(context.Context, node.Options) error, o node.Options) error {
	err := run(cmd.Context(), o)
	if err != nil && !(errors.Is(err, context.Canceled) && cmd.Context().Err() != nil) {
		return a.platform(err)
	}
	return nil
}
