package cli

import (
	"github.com/spf13/cobra"

	"nimbus/internal/node"
)

func (a *app) devCommand() *cobra.Command {
	var flags *nodeFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single-node Nimbus (server and worker) in this process",
		Long: "Run a single-node Nimbus: one server and an embedded worker. On first start it\n" +
			"creates an admin API key in DIR/admin.token. Stop it with Ctrl-C.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if flags.opts.Slots < 0 {
				return usagef("--slots must be 0 (one per core) or more, not %d", flags.opts.Slots)
			}
			opts, err := flags.options(a, cmd)
			if err != nil {
				return err
			}
			return a.runNode(cmd, node.RunDev, opts)
		},
	}
	flags = addNodeFlags(cmd.Flags(), devNode)
	return cmd
}
