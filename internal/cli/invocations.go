package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) invocationsCommand() *cobra.Command {
	var q client.InvocationQuery
	cmd := &cobra.Command{
		Use:   "invocations [NAME]",
		Short: "List recent invocation records, of all functions or of NAME",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.Limit < 0 {
				return usagef("--limit must not be negative")
			}
			if len(args) == 1 {
				q.Function = args[0]
			}
			invs, err := a.client().ListInvocations(cmd.Context(), q)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, invs)
			}
			t := newTable(a.env.Stdout, "ID", "FUNCTION", "REV", "STATUS", "START", "DURATION", "MEMORY", "ERROR")
			for _, inv := range invs {
				dur := humanMS(inv.DurationMS)
				if inv.ColdStart {
					dur += " (cold)"
				}
				t.row(inv.ID, inv.Function, strconv.FormatInt(inv.Revision, 10), inv.Status,
					humanTime(inv.Start), dur, fmt.Sprintf("%d/%d MB", inv.MaxMemoryMB, inv.MemoryMB), inv.ErrorType)
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Status, "status", "", "only invocations with this status (success, failed, ...)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many records (default: the server's)")
	return cmd
}
