package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) subscriptionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subscriptions",
		Short: "Notify a webhook or an e-mail address when invocations succeed, fail, time out or dead-letter",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listSubscriptions(cmd) },
	}
	var s client.Subscription
	var on string
	create := &cobra.Command{
		Use:   "create --on success,failure,timeout,dead_letter,budget (--webhook URL | --email ADDR) [--function F]",
		Short: "Create a subscription",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if on == "" {
				return usagef("--on is required")
			}
			s.On = strings.Split(on, ",")
			out, err := a.client().CreateSubscription(cmd.Context(), s)
			if err != nil {
				return a.platform(err)
			}
			if out.Warning != "" {
				fmt.Fprintf(a.env.Stderr, "nimbus: warning: %s\n", out.Warning)
			}
			if a.json() {
				return printJSON(a.env.Stdout, out)
			}
			fmt.Fprintln(a.env.Stdout, out.ID)
			return nil
		},
	}
	create.Flags().StringVar(&on, "on", "", "conditions: success, failure, timeout, dead_letter, budget (the namespace's budget alerts; no --function) (comma-separated)")
	create.Flags().StringVar(&s.Webhook, "webhook", "", "URL to POST to (signed like destinations)")
	create.Flags().StringVar(&s.Email, "email", "", "address to mail (needs --smtp-addr: refused on a server alone without it, a warning in a cluster)")
	create.Flags().StringVar(&s.Function, "function", "", "only this function (default: all)")
	ls := &cobra.Command{Use: "ls", Short: "List subscriptions", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listSubscriptions(cmd) }}
	rm := &cobra.Command{Use: "rm ID", Short: "Delete a subscription", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteSubscription(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "subscription %s deleted\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func (a *app) listSubscriptions(cmd *cobra.Command) error {
	subs, err := a.client().Subscriptions(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, subs)
	}
	t := newTable(a.env.Stdout, "ID", "FUNCTION", "ON", "TARGET")
	for _, s := range subs {
		target := s.Webhook
		if s.Email != "" {
			target = "mailto:" + s.Email
		}
		fn := s.Function
		if fn == "" {
			fn = "*"
		}
		t.row(s.ID, fn, strings.Join(s.On, ","), target)
	}
	return t.flush()
}
