package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) testEventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test-events",
		Short: "Save events to test a function with, shared by the team",
		Long: "A function keeps up to 10 named test events (names of 1 to 25 letters, digits, '-' or '_';\n" +
			"JSON of at most 256 KB each) that everyone who may read the function sees. Run one with:\n" +
			"nimbus test-events get FUNCTION NAME | nimbus invoke FUNCTION --data @-",
		Args: usageArgs(cobra.NoArgs),
	}
	ls := &cobra.Command{Use: "ls FUNCTION", Short: "List a function's saved test events", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			events, err := a.client().TestEvents(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, events)
			}
			t := newTable(a.env.Stdout, "NAME", "BYTES", "UPDATED", "BY")
			for _, e := range events {
				t.row(e.Name, strconv.Itoa(len(e.Event)), e.UpdatedAt.Format("2006-01-02 15:04:05 MST"), e.UpdatedBy)
			}
			return t.flush()
		}}
	get := &cobra.Command{Use: "get FUNCTION NAME", Short: "Print a saved test event's JSON", Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.client().TestEvent(cmd.Context(), args[0], args[1])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, e)
			}
			var buf bytes.Buffer
			if json.Indent(&buf, e.Event, "", "  ") != nil {
				buf.Reset()
				buf.Write(e.Event)
			}
			_, err = fmt.Fprintf(a.env.Stdout, "%s\n", buf.Bytes())
			return err
		}}
	var data, file string
	save := &cobra.Command{
		Use:   "save FUNCTION NAME (--data JSON | --file F)",
		Short: "Save a test event under a name, replacing what the name held",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var src string
			switch {
			case f.Changed("data") && f.Changed("file"):
				return usagef("give the event with --data or --file, not both")
			case f.Changed("data"):
				src = data
			case f.Changed("file"):
				src = "@" + file
			default:
				return usagef("give the event with --data JSON or --file F")
			}
			event, err := a.readEvent(true, src)
			if err != nil {
				return err
			}
			e, err := a.client().PutTestEvent(cmd.Context(), args[0], args[1], event)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, e)
			}
			fmt.Fprintf(a.env.Stdout, "test event %s of %s saved\n", e.Name, e.Function)
			return nil
		}}
	save.Flags().StringVarP(&data, "data", "d", "", "event JSON, or @FILE to read it from a file (@- for stdin)")
	save.Flags().StringVarP(&file, "file", "f", "", "file to read the event JSON from (- for stdin)")
	rm := &cobra.Command{Use: "rm FUNCTION NAME", Short: "Remove a saved test event", Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteTestEvent(cmd.Context(), args[0], args[1]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "test event %s of %s removed\n", args[1], args[0])
			return nil
		}}
	cmd.AddCommand(ls, get, save, rm)
	return cmd
}
