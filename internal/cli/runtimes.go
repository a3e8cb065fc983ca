package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) runtimesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "runtimes",
		Short: "The Python runtimes the workers offer, and which workers offer each",
		Long: `runtimes lists the Python runtimes that the cluster's healthy workers offer,
newest first: a function's runtime (runtime: in nimbus.yaml, --runtime) must be
one of them, and its invocations run only on the workers that offer it. A
worker offers the interpreters it finds on its host, or exactly those its
--runtime NAME=PATH flags give.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			rts, err := a.client().Runtimes(cmd.Context())
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, rts)
			}
			t := newTable(a.env.Stdout, "RUNTIME", "WORKERS")
			for _, r := range rts {
				t.row(r.Name, strings.Join(r.Workers, ", "))
			}
			return t.flush()
		},
	}
}
