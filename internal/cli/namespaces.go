package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) namespacesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespaces",
		Aliases: []string{"ns"},
		Short:   "Namespaces (tenants): create, list, remove (admin)",
		Args:    usageArgs(cobra.NoArgs),
		RunE:    func(cmd *cobra.Command, args []string) error { return a.listNamespaces(cmd) },
	}
	var ns client.Namespace
	create := &cobra.Command{
		Use:   "create NAME [--concurrency N] [--scan-policy off|warn|block[:SEVERITY]]",
		Short: "Create a namespace, or change its limits",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns.Name = args[0]
			got, created, err := a.client().PutNamespace(cmd.Context(), ns)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, got)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(a.env.Stdout, "namespace %s %s\n", got.Name, verb)
			return nil
		},
	}
	create.Flags().IntVar(&ns.Concurrency, "concurrency", 0, "most invocations running at once in the namespace (0: no limit)")
	create.Flags().StringVar(&ns.ScanPolicy, "scan-policy", "", "code-scanning policy for deploys here (default: the server's)")
	create.Flags().BoolVar(&ns.AllowSdist, "allow-sdist", false, "let dependency builds build source distributions (in a sandbox that reaches only the package index; default: wheels only)")
	ls := &cobra.Command{Use: "ls", Short: "List namespaces", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listNamespaces(cmd) }}
	rm := &cobra.Command{Use: "rm NAME", Short: "Remove an empty namespace", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteNamespace(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "namespace %s removed\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func (a *app) listNamespaces(cmd *cobra.Command) error {
	list, err := a.client().Namespaces(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, list)
	}
	t := newTable(a.env.Stdout, "NAME", "CONCURRENCY", "SCAN POLICY", "SDISTS", "CREATED")
	for _, ns := range list {
		limit := "-"
		if ns.Concurrency > 0 {
			limit = strconv.Itoa(ns.Concurrency)
		}
		sdists := "wheels only"
		if ns.AllowSdist {
			sdists = "built"
		}
		t.row(ns.Name, limit, orDash(ns.ScanPolicy), sdists, orDash(humanTime(ns.CreatedAt)))
	}
	return t.flush()
}
