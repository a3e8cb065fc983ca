package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) buildsCommand() *cobra.Command {
	var showLog bool
	cmd := &cobra.Command{
		Use:   "builds [FUNCTION]",
		Short: "List dependency builds: status, duration, cache hit (and a build's log)",
		Long: `builds lists the dependency builds of the namespace's deploys, newest first:
a deploy whose package has a requirements.txt builds its dependency layer
(pip fetches wheels from the configured index, then installs them in a
sandbox without network), or reuses the layer an earlier build of the same
requirements made. With FUNCTION, only that function's builds; with --log,
the log of its latest build (or of the build whose ID is given).`,
		Example: `  nimbus builds
  nimbus builds greeter --log
  nimbus builds b-1f2e3d4c5b6a7980 --log`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			c := a.client()
			if showLog {
				if name == "" {
					return usagef("--log needs a function or a build ID")
				}
				id := name
				if !strings.HasPrefix(name, "b-") {
					builds, err := c.Builds(cmd.Context(), name)
					if err != nil {
						return a.platform(err)
					}
					if len(builds) == 0 {
						return fmt.Errorf("function %q has no builds", name)
					}
					id = builds[0].ID
				}
				b, err := c.GetBuild(cmd.Context(), id)
				if err != nil {
					return a.platform(err)
				}
				if a.json() {
					return printJSON(a.env.Stdout, b)
				}
				fmt.Fprint(a.env.Stdout, b.Log)
				if b.Error != "" {
					fmt.Fprintf(a.env.Stdout, "\n%s failed: %s\n", b.ID, b.Error)
				}
				return nil
			}
			builds, err := c.Builds(cmd.Context(), name)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, builds)
			}
			t := newTable(a.env.Stdout, "ID", "FUNCTION", "STATUS", "CACHE", "DURATION", "STARTED", "PACKAGES / ERROR")
			for _, b := range builds {
				t.row(b.ID, b.Function, b.Status, cacheWord(b), time.Duration(b.Duration).Round(10*time.Millisecond).String(), humanTime(b.StartedAt), buildOutcome(b))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&showLog, "log", false, "print the build's log")
	return cmd
}

func cacheWord(b client.Build) string {
	if b.CacheHit {
		return "hit"
	}
	return "miss"
}

func buildOutcome(b client.Build) string {
	if b.Error != "" {
		return b.Error
	}
	if b.Layer != nil {
		return strings.Join(b.Layer.Packages, " ")
	}
	return ""
}
