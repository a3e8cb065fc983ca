package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/internal/node"
)

func (a *app) serverCommand() *cobra.Command {
	var flags *nodeFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a control-plane server (a Raft member, API gateway and, when leader, scheduler)",
		Long: "Run a control-plane server. Three servers that know each other through --join\n" +
			"and are started with --bootstrap-expect 3 find each other and bootstrap once, in\n" +
			"any order. They share the key in --bootstrap-token-file, which is also the\n" +
			"cluster's first admin key.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if flags.opts.BootstrapExpect < 0 {
				return usagef("--bootstrap-expect must be 0 or more")
			}
			opts, err := flags.options(a, cmd)
			if err != nil {
				return err
			}
			if opts.BootstrapTokenFile != "" {
				opts.BootstrapTokenFile = a.path(opts.BootstrapTokenFile)
			}
			return a.runNode(cmd, node.RunServer, opts)
		},
	}
	flags = addNodeFlags(cmd.Flags(), serverNode)
	for _, r := range []string{"node-id", "data", "raft"} {
		cmd.MarkFlagRequired(r)
	}
	return cmd
}

func (a *app) workerCommand() *cobra.Command {
	var flags *nodeFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run an execution node that registers with the servers and runs invocations",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if flags.joinToken == "" && flags.joinTokenFile == "" {
				flags.joinToken = a.env.Getenv("NIMBUS_JOIN_TOKEN")
			}
			opts, err := flags.options(a, cmd)
			if err != nil {
				return err
			}
			opts.Token = a.token
			if opts.Token == "" {
				opts.Token = a.env.Getenv("NIMBUS_TOKEN")
			}
			return a.runNode(cmd, node.RunWorker, opts)
		},
	}
	flags = addNodeFlags(cmd.Flags(), workerNode)
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
