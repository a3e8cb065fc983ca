package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/node"
)

func (a *app) serverCommand() *cobra.Command {
	opts := node.ServerOptions{}
	var joinToken, joinTokenFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a control-plane server (a Raft member, API gateway and, when leader, scheduler)",
		Long: "Run a control-plane server. Three servers that know each other through --join\n" +
			"and are started with --bootstrap-expect 3 find each other and bootstrap once, in\n" +
			"any order. They share the key in --bootstrap-token-file, which is also the\n" +
			"cluster's first admin key.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.BootstrapExpect < 0 {
				return usagef("--bootstrap-expect must be 0 or more")
			}
			if err := checkRetention(opts.Retention); err != nil {
				return err
			}
			opts.DataDir = a.path(opts.DataDir)
			if opts.BootstrapTokenFile != "" {
				opts.BootstrapTokenFile = a.path(opts.BootstrapTokenFile)
			}
			t, err := a.joinToken(joinToken, joinTokenFile)
			if err != nil {
				return err
			}
			opts.JoinToken = t
			opts.Out = a.env.Stdout
			err = node.RunServer(cmd.Context(), opts)
			if err != nil && !(errors.Is(err, context.Canceled) && cmd.Context().Err() != nil) {
				return a.platform(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.NodeID, "node-id", "", "this server's ID (required)")
	f.StringVar(&opts.DataDir, "data", "", "data directory (required)")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "API address HOST:PORT (clients, the dashboard, /healthz)")
	f.StringVar(&opts.Raft, "raft", "", "internal address HOST:PORT: Raft, the internal RPC (servers and workers) and enrolment, mutual TLS only (required)")
	f.IntVar(&opts.BootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once this many servers see each other")
	f.StringSliceVar(&opts.Join, "join", nil, "API addresses of other servers, HOST:PORT,...")
	f.StringVar(&opts.BootstrapTokenFile, "bootstrap-token-file", "", "file holding the cluster's shared admin key")
	f.StringVar(&joinToken, "join-token", "", "a server join token (nimbus cluster token create --role server) to get this server's certificate with")
	f.StringVar(&joinTokenFile, "join-token-file", "", "file holding a server join token")
	f.DurationVar(&opts.WorkerDeadAfter, "worker-dead-after", 0, "a worker silent this long is dead (default 5s)")
	f.DurationVar(&opts.WorkerForgetAfter, "worker-forget-after", 0, "a worker silent this long leaves the cluster view; until then it shows as dead (default 5m)")
	f.StringVar(&opts.TLS.Cert, "tls-cert", "", "serve the API and internal RPC over TLS with this certificate (PEM)")
	f.StringVar(&opts.TLS.Key, "tls-key", "", "the certificate's key (PEM)")
	f.BoolVar(&opts.TLS.SelfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate made in DATA/tls")
	f.StringVar(&opts.TLS.CA, "tls-ca", "", "no effect: internal traffic is mutual TLS with the cluster's own CA")
	f.MarkDeprecated("tls-ca", "internal traffic is mutual TLS with the cluster's own CA; the flag has no effect")
	f.StringVar(&opts.ScanPolicy, "scan-policy", "warn", "code scanning with Bandit at deploy: off, warn, or block[:LOW|MEDIUM|HIGH]")
	f.Float64Var(&opts.RateLimit, "rate-limit", 0, "default requests per second per API key (0: no limit)")
	f.DurationVar(&opts.Timeouts.Header, "header-timeout", 10*time.Second, "time a client has to send a request's headers")
	f.DurationVar(&opts.Timeouts.Body, "body-timeout", 30*time.Second, "time a client has to send a request's body, plus its size at 100 KB/s")
	f.StringVar(&opts.SMTPAddr, "smtp-addr", "", "SMTP relay host:port for e-mail notifications")
	f.StringVar(&opts.SMTPFrom, "smtp-from", "nimbus@localhost", "sender address of e-mail notifications")
	retentionFlags(f, &opts.Retention)
	f.BoolVar(&opts.Standby, "standby", false, "join as a non-voter, promoted when a voter has been dead for --promote-after")
	f.DurationVar(&opts.PromoteAfter, "promote-after", 0, "how long a voter may be dead before a standby replaces it (default 10s)")
	for _, r := range []string{"node-id", "data", "raft"} {
		cmd.MarkFlagRequired(r)
	}
	return cmd
}

func (a *app) workerCommand() *cobra.Command {
	opts := node.WorkerOptions{}
	var freeze *freezeFlags
	var joinToken, joinTokenFile string
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run an execution node that registers with the servers and runs invocations",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.DataDir = a.path(opts.DataDir)
			opts.Token = a.token
			if opts.Token == "" {
				opts.Token = a.env.Getenv("NIMBUS_TOKEN")
			}
			t, err := a.joinToken(joinToken, joinTokenFile)
			if err != nil {
				return err
			}
			if t == "" {
				t = strings.TrimSpace(a.env.Getenv("NIMBUS_JOIN_TOKEN"))
			}
			opts.JoinToken = t
			if opts.FreezeAfter, err = freeze.after(a, cmd.Flags()); err != nil {
				return err
			}
			opts.Out = a.env.Stdout
			err = node.RunWorker(cmd.Context(), opts)
			if err != nil && !(errors.Is(err, context.Canceled) && cmd.Context().Err() != nil) {
				return a.platform(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ID, "id", "", "worker ID (default worker-<port>)")
	f.StringSliceVar(&opts.Servers, "servers", nil, "API addresses of the servers, HOST:PORT,... (required)")
	f.StringVar(&opts.DataDir, "data", ".nimbus-worker", "data directory")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:0", "RPC address HOST:PORT")
	f.StringVar(&opts.Advertise, "advertise", "", "address the servers reach this worker at (default --listen)")
	f.IntVar(&opts.Slots, "slots", 0, "concurrent invocations (default one per core)")
	f.IntVar(&opts.Prestart, "prestart", 2, "sandboxes per runtime started ahead of need, to speed cold starts (0: none)")
	freeze = addFreezeFlags(f)
	f.StringVar(&opts.TLSCA, "tls-ca", "", "CA of the servers' API certificates, when their API is HTTPS")
	f.StringVar(&joinToken, "join-token", "", "a join token (nimbus cluster token create) to get this worker's certificate with, on its first start")
	f.StringVar(&joinTokenFile, "join-token-file", "", "file holding a join token")
	f.Float64Var(&opts.PressureLimit, "pressure-limit", 90, "refuse new work while busy and CPU or memory pressure (PSI avg10, %) is above this; negative: never")
	f.BoolVar(&opts.InsecureNoSandbox, "insecure-no-sandbox", false, "INSECURE: run functions as plain processes, without namespaces, cgroups or seccomp (trusted code only)")
	cmd.MarkFlagRequired("servers")
	cmd.AddCommand(&cobra.Command{
		Use:   "undrain ID",
		Short: "Make a drained worker take new invocations again",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().UndrainWorker(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "worker %s takes new invocations again\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "drain ID",
		Short: "Stop a worker taking new invocations; running ones finish (undo with undrain)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DrainWorker(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "worker %s is draining\n", args[0])
			return nil
		},
	})
	return cmd
}

// joinToken reads a join token from the flag or the file (not both).
func (a *app) joinToken(token, file string) (string, error) {
	if token != "" && file != "" {
		return "", usagef("--join-token and --join-token-file: one or the other")
	}
	if file == "" {
		return strings.TrimSpace(token), nil
	}
	b, err := os.ReadFile(a.path(file))
	if err != nil {
		return "", usagef("--join-token-file: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}
