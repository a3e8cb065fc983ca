package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

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
			fmt.Fprintf(a.env.Stdout, "schedule %s %s; next fire %s\n", out.Name, verb, scheduleTime(out.NextFire, out.Timezone))
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
			if a.json() {
				return printJSON(a.env.Stdout, s)
			}
			return printSchedule(a.env.Stdout, s)
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
	t := newTable(a.env.Stdout, "NAME", "FUNCTION", "EXPRESSION", "TIME ZONE", "STATE", "NEXT FIRE", "FIRES", "MISSED")
	for _, s := range scs {
		t.row(s.Name, s.Function, s.Expression, scheduleZone(s.Timezone), scheduleState(s), scheduleTime(s.NextFire, s.Timezone),
			strconv.FormatInt(s.Fires, 10), strconv.FormatInt(s.Missed, 10))
	}
	return t.flush()
}

func scheduleState(s client.Schedule) string {
	if s.Disabled {
		return "disabled"
	}
	return "enabled"
}

// scheduleZone is a schedule's time zone: its own, or UTC.
func scheduleZone(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// scheduleTime shows t in the schedule's time zone, naming the zone.
func scheduleTime(t time.Time, tz string) string {
	if t.IsZero() {
		return ""
	}
	loc, err := time.LoadLocation(scheduleZone(tz))
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// printSchedule describes one schedule as a table of fields.
func printSchedule(w io.Writer, s client.Schedule) error {
	policy := s.Policy
	if policy == "" {
		policy = "allow"
	}
	event := "(a scheduled-event record)"
	if len(s.Event) > 0 {
		event = string(s.Event)
	}
	t := newTable(w)
	t.row("name:", s.Name)
	t.row("namespace:", client.NamespaceOf(s.Namespace))
	t.row("function:", s.Function)
	t.row("expression:", s.Expression)
	t.row("time zone:", scheduleZone(s.Timezone))
	t.row("policy:", policy)
	t.row("state:", scheduleState(s))
	t.row("event:", event)
	t.row("next fire:", scheduleTime(s.NextFire, s.Timezone))
	t.row("last slot:", scheduleTime(s.LastSlot, s.Timezone))
	t.row("last request:", s.LastRequest)
	t.row("fires:", strconv.FormatInt(s.Fires, 10))
	t.row("missed:", strconv.FormatInt(s.Missed, 10))
	t.row("created:", scheduleTime(s.CreatedAt, s.Timezone))
	return t.flush()
}
