package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) eventsCommand() *cobra.Command {
	var function string
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [-f] [--function F]",
		Short: "Stream invocation events (queued, running, success, failed, dead_letter) as they happen",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := a.client().FollowEvents(cmd.Context(), function, func(e client.Event) {
				if a.json() {
					printJSONLine(a.env.Stdout, e)
					return
				}
				fmt.Fprintf(a.env.Stdout, "%s  %-12s %-36s %-10s %s %s\n", e.Time.Format("15:04:05.000"), e.Function, e.RequestID, e.Status, e.Trigger, e.ErrorType)
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
