package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) budgetsCommand() *cobra.Command {
	var all bool
	list := func(cmd *cobra.Command) error {
		bs, err := a.client().Budgets(cmd.Context(), all)
		if err != nil {
			return a.platform(err)
		}
		return a.printBudgets(bs)
	}
	cmd := &cobra.Command{
		Use:   "budgets",
		Short: "Monthly budgets: alerts at thresholds of spend or forecast, and an optional hard limit",
		Long: `A namespace's budget is a monthly amount in the currency of its prices
(nimbus prices). When the month's spend, or its forecast, crosses one of
its thresholds (percentages of the amount), the namespace's subscriptions
on "budget" are notified, once per threshold a month. With --hard-limit,
once the month's spend reaches the amount, the namespace's invocations are
refused with 429 BudgetExceeded (queued events wait) until the month ends
or an admin raises the budget.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return list(cmd) },
	}
	ls := &cobra.Command{
		Use:   "ls [--all-namespaces]",
		Short: "The namespace's budget with the month's spend and forecast (an admin: every namespace's)",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return list(cmd) },
	}
	ls.Flags().BoolVar(&all, "all-namespaces", false, "every namespace's (admin)")
	var (
		req    client.BudgetRequest
		notify string
	)
	set := func(use, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " NAMESPACE --monthly AMOUNT [--notify 50,80,100] [--hard-limit]",
			Short: short,
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				if !cmd.Flags().Changed("monthly") {
					return usagef("--monthly AMOUNT is required: the budget for a month, in the currency of the namespace's prices")
				}
				req.Notify = nil
				for _, p := range strings.Split(notify, ",") {
					if p = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "%")); p == "" {
						continue
					}
					n, err := strconv.Atoi(p)
					if err != nil {
						return usagef("--notify %q: want percentages such as 50,80,100", notify)
					}
					req.Notify = append(req.Notify, n)
				}
				b, err := a.client().SetBudget(cmd.Context(), args[0], req)
				if err != nil {
					return a.platform(err)
				}
				return a.printBudgets([]client.Budget{b})
			},
		}
		c.Flags().Float64Var(&req.Monthly, "monthly", 0, "the budget for a month, in the currency of the namespace's prices")
		c.Flags().StringVar(&notify, "notify", "", "percentages of the budget whose crossing is notified, e.g. 50,80,100")
		c.Flags().BoolVar(&req.HardLimit, "hard-limit", false, "refuse the namespace's invocations once the month's spend reaches the budget")
		return c
	}
	rm := &cobra.Command{
		Use:   "rm NAMESPACE",
		Short: "Remove a namespace's budget (admin)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteBudget(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "the budget of namespace %s is removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(ls, set("create", "Give a namespace a budget (admin)"), set("set", "Change a namespace's budget: the whole of it (admin)"), rm)
	return cmd
}

func (a *app) printBudgets(bs []client.Budget) error {
	if a.json() {
		return printJSON(a.env.Stdout, bs)
	}
	t := newTable(a.env.Stdout, "NAMESPACE", "MONTHLY", "SPENT", "FORECAST", "NOTIFY AT", "HARD LIMIT", "ALERTS SENT")
	for _, b := range bs {
		var at []string
		for _, n := range b.Notify {
			at = append(at, strconv.Itoa(n)+"%")
		}
		limit := "no"
		if b.HardLimit {
			limit = "yes"
			if b.Exceeded {
				limit = "reached: invocations refused"
			}
		}
		t.row(b.Namespace, money(b.Monthly, b.Currency), money(b.Spent, b.Currency), money(b.Forecast, b.Currency),
			strings.Join(at, ","), limit, strings.Join(b.Alerts, ","))
	}
	return t.flush()
}
