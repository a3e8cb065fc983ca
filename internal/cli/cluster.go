package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
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
	var tokenRole, tokenTTL, tokenNote string
	tokenCreate := &cobra.Command{
		Use:   "create",
		Short: "Make a join token: a new worker or server presents it once to get its certificate",
		Long: "Make a join token (admin). A worker started with --join-token (or a server with\n" +
			"--join-token) presents it to a server's internal port with a certificate request\n" +
			"and gets its certificate of the cluster CA. The token is printed once, on the last\n" +
			"line; the servers keep only its hash. Revoke it with `nimbus keys revoke ID`.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokenRole != "worker" && tokenRole != "server" {
				return usagef("--role is worker or server")
			}
			k, err := a.client().CreateJoinToken(cmd.Context(), client.JoinTokenRequest{Role: tokenRole, TTL: tokenTTL, Note: tokenNote})
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, k)
			}
			fmt.Fprintf(a.env.Stdout, "join token %s for a %s, valid until %s\n%s\n", k.ID, tokenRole,
				k.ExpiresAt.Local().Format(time.RFC3339), k.Secret)
			return nil
		},
	}
	tokenCreate.Flags().StringVar(&tokenRole, "role", "worker", "worker or server")
	tokenCreate.Flags().StringVar(&tokenTTL, "ttl", "1h", "how long the token is valid (e.g. 30m, 12h, 2d)")
	tokenCreate.Flags().StringVar(&tokenNote, "note", "", "a note kept with the token")
	token := &cobra.Command{Use: "token", Short: "Join tokens for new workers and servers", Args: usageArgs(cobra.NoArgs)}
	token.AddCommand(tokenCreate)
	cmd.AddCommand(join, remove, token, a.clusterScalingCommand())
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
			if cl.NotMember != "" {
				fmt.Fprintf(w, "THIS SERVER IS NOT A MEMBER OF THE CLUSTER: %s\nWhat follows is its stale view.\n\n", cl.NotMember)
			}
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
			t = newTable(w, "ID", "ADDRESS", "EXECUTOR", "SLOTS", "IN USE", "WARM", "INSTANCES", "INSTANCE MEMORY", "STATE")
			for _, wk := range cl.Workers {
				state := wk.State
				if state == "" { // a server from before states
					state = map[bool]string{true: "ready", false: "not ready"}[wk.Healthy]
				}
				t.row(wk.ID, wk.Address, wk.Executor, strconv.Itoa(wk.Slots),
					fmt.Sprintf("%d", wk.InUse), strconv.Itoa(wk.WarmInstances), strconv.Itoa(wk.Instances),
					instanceMemory(wk), state)
			}
			return t.flush()
		},
	}
}

// instanceMemory renders a worker's memory budget and its use, "12.0
// MB of 5.9 GB", or "-" for a worker that did not say (one from before
// budgets).
func instanceMemory(wk client.Worker) string {
	if wk.InstanceMemory == 0 {
		return "-"
	}
	return humanBytes(wk.InstanceMemoryUsed) + " of " + humanBytes(wk.InstanceMemory)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
