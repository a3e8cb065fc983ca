package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/node"
)

func (a *app) devCommand() *cobra.Command {
	opts := node.DevOptions{}
	var freeze *freezeFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single-node Nimbus (server and worker) in this process",
		Long: "Run a single-node Nimbus: one server and an embedded worker. On first start it\n" +
			"creates an admin API key in DIR/admin.token. Stop it with Ctrl-C.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Slots < 0 {
				return usagef("--slots must be 0 (one per core) or more, not %d", opts.Slots)
			}
			if err := checkRetention(opts.Retention); err != nil {
				return err
			}
			opts.DataDir = a.path(opts.DataDir)
			opts.Out = a.env.Stdout
			var ferr error
			if opts.FreezeAfter, ferr = freeze.after(a, cmd.Flags()); ferr != nil {
				return ferr
			}
			err := node.RunDev(cmd.Context(), opts)
			if err != nil && !(errors.Is(err, context.Canceled) && cmd.Context().Err() != nil) {
				return a.platform(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data", ".nimbus", "data directory")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "API address HOST:PORT")
	f.IntVar(&opts.Slots, "slots", 0, "worker slots (0: four per core)")
	f.StringVar(&opts.TLS.Cert, "tls-cert", "", "serve the API over TLS with this certificate (PEM)")
	f.StringVar(&opts.TLS.Key, "tls-key", "", "the certificate's key (PEM)")
	f.BoolVar(&opts.TLS.SelfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate made in DIR/tls")
	f.StringVar(&opts.ScanPolicy, "scan-policy", "warn", "code scanning with Bandit at deploy: off, warn, or block[:LOW|MEDIUM|HIGH]")
	f.Float64Var(&opts.RateLimit, "rate-limit", 0, "default requests per second per API key (0: no limit)")
	f.DurationVar(&opts.Timeouts.Header, "header-timeout", 10*time.Second, "time a client has to send a request's headers")
	f.DurationVar(&opts.Timeouts.Body, "body-timeout", 30*time.Second, "time a client has to send a request's body, plus its size at 100 KB/s")
	f.DurationVar(&opts.IdleTimeout, "idle-timeout", 10*time.Minute, "warm instances idle this long stop (provisioned ones stay)")
	f.IntVar(&opts.Prestart, "prestart", 2, "sandboxes per runtime started ahead of need, to speed cold starts (0: none)")
	freeze = addFreezeFlags(f)
	f.StringVar(&opts.SMTPAddr, "smtp-addr", "", "SMTP relay host:port for e-mail notifications")
	f.StringVar(&opts.SMTPFrom, "smtp-from", "nimbus@localhost", "sender address of e-mail notifications")
	retentionFlags(f, &opts.Retention)
	f.BoolVar(&opts.InsecureNoSandbox, "insecure-no-sandbox", false, "INSECURE: run functions as plain processes, without namespaces, cgroups or seccomp (trusted code only)")
	return cmd
}
