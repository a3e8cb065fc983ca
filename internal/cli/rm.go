package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) rmCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a function",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteFunction(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, map[string]any{"name": args[0], "deleted": true})
			}
			_, err := fmt.Fprintf(a.env.Stdout, "deleted %s\n", args[0])
			return err
		},
	}
}
