package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) deadlettersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deadletters [FUNCTION]",
		Short: "List asynchronous events that were given up on",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fn := ""
			if len(args) == 1 {
				fn = args[0]
			}
			dls, err := a.client().DeadLetters(cmd.Context(), fn)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, dls)
			}
			t := newTable(a.env.Stdout, "REQUEST ID", "FUNCTION", "REASON", "ATTEMPTS", "LAST ERROR", "AT")
			for _, d := range dls {
				t.row(d.RequestID, d.Function, d.Reason, strconv.Itoa(d.Attempts), orDash(d.LastError), humanTime(d.At))
			}
			return t.flush()
		},
	}
	var all bool
	var function string
	redrive := &cobra.Command{
		Use:   "redrive ID... | --all [--function F]",
		Short: "Queue dead letters again",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usagef("give dead letter IDs or --all, not both or neither")
			}
			n, err := a.client().Redrive(cmd.Context(), args, all, function)
			if err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "%d dead letters queued again\n", n)
			return nil
		},
	}
	redrive.Flags().BoolVar(&all, "all", false, "every dead letter")
	redrive.Flags().StringVar(&function, "function", "", "with --all: only this function's")
	cmd.AddCommand(redrive)
	return cmd
}

func (a *app) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Short: "Webhook deliveries", Args: usageArgs(cobra.NoArgs)}
	cmd.AddCommand(&cobra.Command{
		Use:   "secret",
		Short: "Print the secret that signs webhook deliveries (header X-Nimbus-Signature)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().WebhookSecret(cmd.Context())
			if err != nil {
				return a.platform(err)
			}
			fmt.Fprintln(a.env.Stdout, s)
			return nil
		},
	})
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
