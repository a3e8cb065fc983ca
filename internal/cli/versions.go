package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) publishVersionCommand() *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish the function's current code and configuration as a numbered version",
		Long: `Publish makes an immutable version (1, 2, ...) of what function NAME runs now:
its code, configuration, layers and dependencies. Invoke it as NAME:VERSION, or
point an alias at it (nimbus aliases). $LATEST, the function itself, keeps
changing with each deploy; a version never does. Publishing again before the
next deploy returns the same version.`,
		Example: `  nimbus publish hello --description "first release"
  nimbus invoke hello:1`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.client().PublishVersion(cmd.Context(), args[0], description)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, v)
			}
			if !v.Created {
				fmt.Fprintf(a.env.Stdout, "%s:%s is the latest version already (nothing changed since it was published)\n", v.Name, v.Version)
				return nil
			}
			fmt.Fprintf(a.env.Stdout, "published %s:%s (revision %d)\n", v.Name, v.Version, v.Revision)
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what this version is (default: the function's description)")
	return cmd
}

func (a *app) versionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "List and remove a function's published versions",
		Args:  usageArgs(cobra.NoArgs),
	}
	ls := &cobra.Command{
		Use:   "ls NAME",
		Short: "List the function's published versions",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, err := a.client().Versions(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, vs)
			}
			t := newTable(a.env.Stdout, "VERSION", "REVISION", "RUNTIME", "MEMORY", "CODE", "PUBLISHED", "DESCRIPTION")
			for _, v := range vs {
				t.row(v.Version, strconv.FormatInt(v.Revision, 10), v.Runtime, fmt.Sprintf("%d MB", v.MemoryMB), shortDigest(v.CodeSHA256), humanTime(v.CreatedAt), v.Description)
			}
			return t.flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME VERSION",
		Short: "Remove a published version no alias routes to",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteVersion(cmd.Context(), args[0], args[1]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "removed %s:%s\n", args[0], args[1])
			return nil
		},
	}
	cmd.AddCommand(ls, rm)
	return cmd
}

func (a *app) aliasesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aliases",
		Short: "Name versions of a function, and shift traffic between two",
		Long: `An alias is a name for a published version (or $LATEST) that callers invoke as
NAME:ALIAS, so a release is a change of the alias, not of every caller. With
--weight VERSION=SHARE the alias sends that share of its invocations (between 0
and 1) to a second version: a gradual rollout. Every invocation reports the
version that ran (X-Nimbus-Executed-Version, and in its record).`,
		Example: `  nimbus publish hello && nimbus aliases create hello live --version 1
  nimbus publish hello && nimbus aliases update hello live --weight 2=0.1
  nimbus aliases update hello live --version 2
  nimbus invoke hello:live`,
		Args: usageArgs(cobra.NoArgs),
	}
	var (
		version, weight, description string
		noWeight                     bool
	)
	show := func(al client.Alias) error {
		if a.json() {
			return printJSON(a.env.Stdout, al)
		}
		fmt.Fprintf(a.env.Stdout, "%s:%s -> %s\n", al.Function, al.Name, aliasTarget(al))
		return nil
	}
	create := &cobra.Command{
		Use:   "create NAME ALIAS --version N [--weight M=SHARE]",
		Short: "Make an alias",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == "" {
				return usagef("give the version the alias names: --version N (or $LATEST)")
			}
			al := client.Alias{Name: args[1], Version: version, Description: description}
			var err error
			if al.Routing, err = parseWeight(weight); err != nil {
				return err
			}
			out, err := a.client().CreateAlias(cmd.Context(), args[0], al)
			if err != nil {
				return a.platform(err)
			}
			return show(out)
		},
	}
	update := &cobra.Command{
		Use:   "update NAME ALIAS [--version N] [--weight M=SHARE | --no-weight]",
		Short: "Point an alias elsewhere, or change its routing",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			al, err := c.GetAlias(cmd.Context(), args[0], args[1])
			if err != nil {
				return a.platform(err)
			}
			if version != "" {
				al.Version = version
			}
			if cmd.Flags().Changed("description") {
				al.Description = description
			}
			switch {
			case noWeight && weight != "":
				return usagef("--weight and --no-weight contradict each other")
			case noWeight:
				al.Routing = nil
			case weight != "":
				if al.Routing, err = parseWeight(weight); err != nil {
					return err
				}
			}
			out, err := c.UpdateAlias(cmd.Context(), args[0], client.Alias{Name: al.Name, Version: al.Version, Description: al.Description, Routing: al.Routing})
			if err != nil {
				return a.platform(err)
			}
			return show(out)
		},
	}
	for _, c := range []*cobra.Command{create, update} {
		c.Flags().StringVar(&version, "version", "", "the version the alias names: a number, or $LATEST")
		c.Flags().StringVar(&weight, "weight", "", "route a share of the invocations to a second version: VERSION=SHARE, e.g. 2=0.1")
		c.Flags().StringVar(&description, "description", "", "what the alias is for")
	}
	update.Flags().BoolVar(&noWeight, "no-weight", false, "stop routing to a second version")
	ls := &cobra.Command{
		Use:   "ls NAME",
		Short: "List the function's aliases",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			as, err := a.client().Aliases(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, as)
			}
			t := newTable(a.env.Stdout, "ALIAS", "VERSION", "UPDATED", "DESCRIPTION")
			for _, al := range as {
				t.row(al.Name, aliasTarget(al), humanTime(al.UpdatedAt), al.Description)
			}
			return t.flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME ALIAS",
		Short: "Remove an alias",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteAlias(cmd.Context(), args[0], args[1]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "removed alias %s:%s\n", args[0], args[1])
			return nil
		},
	}
	cmd.AddCommand(create, update, ls, rm)
	return cmd
}

// aliasTarget says where an alias sends invocations: "2", or
// "1 (90%), 2 (10%)".
func aliasTarget(al client.Alias) string {
	if al.Routing == nil {
		return al.Version
	}
	w := al.Routing.Weight
	return fmt.Sprintf("%s (%s), %s (%s)", al.Version, percent(1-w), al.Routing.Version, percent(w))
}

func percent(f float64) string {
	return strconv.FormatFloat(f*100, 'f', -1, 64) + "%"
}

// parseWeight reads --weight VERSION=SHARE ("" is none).
func parseWeight(s string) (*client.AliasRouting, error) {
	if s == "" {
		return nil, nil
	}
	v, share, ok := strings.Cut(s, "=")
	w, err := strconv.ParseFloat(share, 64)
	if !ok || v == "" || err != nil {
		return nil, usagef("--weight %q is not VERSION=SHARE, e.g. 2=0.1", s)
	}
	return &client.AliasRouting{Version: v, Weight: w}, nil
}
