package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) logsCommand() *cobra.Command {
	var (
		follow  bool
		request string
		since   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a function's logs",
		Long: "Print the logs of function NAME, one invocation after another. With -f, keep\n" +
			"printing new logs until interrupted. With -o json, entries are printed as a JSON\n" +
			"list, or with -f one JSON object per line.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since < 0 {
				return usagef("--since must not be negative")
			}
			q := client.LogQuery{RequestID: request, Since: since}
			c := a.client()
			if !follow {
				entries, err := c.Logs(cmd.Context(), args[0], q)
				if err != nil {
					return a.platform(err)
				}
				if a.json() {
					return printJSON(a.env.Stdout, entries)
				}
				for _, e := range entries {
					io.WriteString(a.env.Stdout, ensureNewline(e.Log))
				}
				return nil
			}
			enc := json.NewEncoder(a.env.Stdout)
			enc.SetEscapeHTML(false)
			err := c.FollowLogs(cmd.Context(), args[0], q, func(e client.LogEntry) {
				if a.json() {
					enc.Encode(e)
					return
				}
				io.WriteString(a.env.Stdout, ensureNewline(e.Log))
			})
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // interrupted: the normal way to stop following
			}
			return a.platform(err)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new logs until interrupted")
	f.StringVar(&request, "request", "", "only the log of this request id")
	f.DurationVar(&since, "since", 0, "only logs newer than this, e.g. 10m")
	return cmd
}
