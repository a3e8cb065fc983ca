package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) rmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a function",
		Long: "Delete a function. While schedules, subscriptions, other functions' destinations or topic\n" +
			"subscriptions name it, the server refuses and lists them; --force removes them too, with the function.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			del, err := a.client().RemoveFunction(cmd.Context(), args[0], force)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, map[string]any{"name": args[0], "deleted": true, "removed": del.Removed})
			}
			if del.Removed != nil {
				_, err = fmt.Fprintf(a.env.Stdout, "deleted %s, and removed what named it: %s\n", args[0], del.Removed)
				return err
			}
			_, err = fmt.Fprintf(a.env.Stdout, "deleted %s\n", args[0])
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also remove the schedules, subscriptions, other functions' destinations and topic subscriptions that name it")
	return cmd
}
