package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// eventLine is the format of a line of `nimbus events` (and its header).
const eventLine = "%-12s  %-12s %-36s %-10s %s %s\n"

func (a *app) eventsCommand() *cobra.Command {
	var function string
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [-f] [--function F]",
		Short: "Stream invocation events (queued, running, success, failed, dead_letter) as they happen",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !a.json() {
				// Say at once what is coming: the stream may stay quiet
				// for a long time.
				fmt.Fprintf(a.env.Stdout, eventLine, "TIME", "FUNCTION", "REQUEST ID", "STATUS", "TRIGGER", "ERROR")
				if a.env.IsTerminal(a.env.Stderr) {
					fmt.Fprintf(a.env.Stderr, "waiting for events from %s (Ctrl-C to stop)...\n", a.serverURL())
				}
			}
			err := a.client().FollowEvents(cmd.Context(), function, func(e client.Event) {
				if a.json() {
					printJSONLine(a.env.Stdout, e)
					return
				}
				fmt.Fprintf(a.env.Stdout, eventLine, e.Time.Format("15:04:05.000"), e.Function, e.RequestID, e.Status, e.Trigger, e.ErrorType)
			})
			if err != nil && !(errors.Is(err, context.Canceled) && cmd.Context().Err() != nil) {
				return a.platform(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "only this function's events")
	cmd.Flags().BoolVarP(&follow, "follow", "f", true, "keep streaming (the default; events are a live stream)")
	return cmd
}
