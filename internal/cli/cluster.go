package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) clusterCommand() *cobra.Command {
	cmd := a.clusterShowCommand()
	var nonvoter bool
	join := &cobra.Command{
		Use:   "join ADDRESS",
		Short: "Add the server whose API answers at ADDRESS (HOST:PORT) to the cluster",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.client().JoinServer(cmd.Context(), args[0], nonvoter)
			if err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "server %s (%s) joined the cluster\n", id, args[0])
			return nil
		},
	}
	join.Flags().BoolVar(&nonvoter, "nonvoter", false, "join as a non-voter (a standby)")
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a server from the cluster",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RemoveServer(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "server %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(join, remove)
	return cmd
}

func (a *app) clusterShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster's servers and workers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client().Cluster(cmd.Context())
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, cl)
			}
			w := a.env.Stdout
			io.WriteString(w, "SERVERS\n")
			t := newTable(w, "ID", "ADDRESS", "RAFT", "ROLE", "TERM", "COMMIT INDEX", "HEALTHY")
			for _, s := range cl.Servers {
				t.row(s.ID, s.Address, s.Raft, s.Role, strconv.FormatUint(s.Term, 10),
					strconv.FormatUint(s.LastIndex, 10), yesNo(s.Healthy))
			}
			if err := t.flush(); err != nil {
				return err
			}
			io.WriteString(w, "\nWORKERS\n")
			t = newTable(w, "ID", "ADDRESS", "EXECUTOR", "SLOTS", "IN USE", "WARM", "HEALTHY")
			for _, wk := range cl.Workers {
				t.row(wk.ID, wk.Address, wk.Executor, strconv.Itoa(wk.Slots),
					fmt.Sprintf("%d", wk.InUse), strconv.Itoa(wk.WarmInstances), yesNo(wk.Healthy))
			}
			return t.flush()
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
