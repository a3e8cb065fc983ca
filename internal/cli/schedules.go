package cli

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) schedulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "Run functions on cron or rate schedules",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listSchedules(cmd) },
	}
	var sc client.Schedule
	var event string
	create := &cobra.Command{
		Use:   "create NAME --function FN --expression EXPR",
		Short: "Create or replace a schedule",
		Long: "Expressions: rate(5 minutes), cron(0 12 * * ? *) (EventBridge), 5-field cron,\n" +
			"6-field cron with seconds, @every 30s, @hourly, @daily, @weekly, @monthly, @yearly.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc.Name = args[0]
			if sc.Function == "" || sc.Expression == "" {
				return usagef("--function and --expression are required")
			}
			if event != "" {
				if !json.Valid([]byte(event)) {
					return usagef("--event is not valid JSON")
				}
				sc.Event = json.RawMessage(event)
			}
			out, created, err := a.client().PutSchedule(cmd.Context(), sc)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, out)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(a.env.Stdout, "schedule %s %s; next fire %s\n", out.Name, verb, humanTime(out.NextFire))
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&sc.Function, "function", "", "function to invoke")
	f.StringVar(&sc.Expression, "expression", "", "schedule expression")
	f.StringVar(&event, "event", "", "event JSON (default: a scheduled-event record)")
	f.StringVar(&sc.Timezone, "timezone", "", "IANA time zone for cron expressions (default UTC)")
	f.StringVar(&sc.Policy, "policy", "allow", "allow, or forbid (skip a slot while the previous run goes on)")
	f.BoolVar(&sc.Disabled, "disabled", false, "create it disabled")

	ls := &cobra.Command{Use: "ls", Short: "List schedules with their next fire times", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listSchedules(cmd) }}
	get := &cobra.Command{Use: "get NAME", Short: "Describe a schedule", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			return printJSON(a.env.Stdout, s)
		}}
	rm := &cobra.Command{Use: "rm NAME", Short: "Delete a schedule", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteSchedule(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "schedule %s deleted\n", args[0])
			return nil
		}}
	toggle := func(enabled bool, use, short string) *cobra.Command {
		return &cobra.Command{Use: use + " NAME", Short: short, Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := a.client().EnableSchedule(cmd.Context(), args[0], enabled)
				if err != nil {
					return a.platform(err)
				}
				fmt.Fprintf(a.env.Stdout, "schedule %s %sd\n", s.Name, use)
				return nil
			}}
	}
	cmd.AddCommand(create, ls, get, rm, toggle(true, "enable", "Enable a schedule"), toggle(false, "disable", "Disable a schedule"))
	return cmd
}

func (a *app) listSchedules(cmd *cobra.Command) error {
	scs, err := a.client().Schedules(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, scs)
	}
	t := newTable(a.env.Stdout, "NAME", "FUNCTION", "EXPRESSION", "STATE", "NEXT FIRE", "FIRES", "MISSED")
	for _, s := range scs {
		state := "enabled"
		if s.Disabled {
			state = "disabled"
		}
		t.row(s.Name, s.Function, s.Expression, state, humanTime(s.NextFire), strconv.FormatInt(s.Fires, 10), strconv.FormatInt(s.Missed, 10))
	}
	return t.flush()
}
