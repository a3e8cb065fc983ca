package cli

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) lsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List functions",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fns, err := a.client().ListFunctions(cmd.Context())
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, fns)
			}
			t := newTable(a.env.Stdout, "NAME", "REVISION", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "UPDATED")
			for _, f := range fns {
				t.row(f.Name, strconv.FormatInt(f.Revision, 10), f.Runtime, f.Handler,
					memoryMB(f.MemoryMB), timeoutString(time.Duration(f.Timeout)), humanTime(f.UpdatedAt))
			}
			return t.flush()
		},
	}
}

// memoryMB renders a memory size in MB, "" for unset.
func memoryMB(mb int) string {
	if mb == 0 {
		return ""
	}
	return strconv.Itoa(mb) + " MB"
}

// timeoutString renders a timeout, "" for unset.
func timeoutString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
