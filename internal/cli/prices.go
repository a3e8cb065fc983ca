package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

func (a *app) pricesCommand() *cobra.Command {
	var cluster bool
	get := func(cmd *cobra.Command) error {
		p, err := a.client().Prices(cmd.Context(), cluster)
		if err != nil {
			return a.platform(err)
		}
		return a.printPrices(p)
	}
	cmd := &cobra.Command{
		Use:   "prices",
		Short: "The price table that usage is costed at: get, set, reset",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return get(cmd) },
	}
	getCmd := &cobra.Command{
		Use:   "get [--cluster]",
		Short: "Show the prices of the namespace you act in (--namespace), or the cluster's",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return get(cmd) },
	}
	getCmd.Flags().BoolVar(&cluster, "cluster", false, "the cluster's table, not a namespace's")
	var (
		p        client.PriceTable
		freeTier bool
	)
	set := &cobra.Command{
		Use:   "set [NAMESPACE] [--currency C] [--gb-second P] [--million-requests P] [--provisioned-gb-second P] [--free-tier | --free-gb-seconds N --free-requests N]",
		Short: "Set the cluster's prices, or a namespace's own (admin); unset flags keep their values",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := ""
			if len(args) == 1 {
				ns = args[0]
			}
			cur, err := a.currentPrices(cmd, ns)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("currency") {
				cur.Currency = p.Currency
			}
			if f.Changed("gb-second") {
				cur.PerGBSecond = p.PerGBSecond
			}
			if f.Changed("million-requests") {
				cur.PerMillionRequests = p.PerMillionRequests
			}
			if f.Changed("provisioned-gb-second") {
				cur.PerProvisionedGBSecond = p.PerProvisionedGBSecond
			}
			if freeTier && (f.Changed("free-gb-seconds") || f.Changed("free-requests")) {
				return usagef("--free-tier sets Lambda's free tier: give it, or --free-gb-seconds and --free-requests, not both")
			}
			if freeTier {
				cur.FreeGBSeconds, cur.FreeRequests = model.LambdaFreeGBSeconds, model.LambdaFreeRequests
			}
			if f.Changed("free-gb-seconds") {
				cur.FreeGBSeconds = p.FreeGBSeconds
			}
			if f.Changed("free-requests") {
				cur.FreeRequests = p.FreeRequests
			}
			got, err := a.client().SetPrices(cmd.Context(), ns, cur)
			if err != nil {
				return a.platform(err)
			}
			return a.printPrices(got)
		},
	}
	set.Flags().StringVar(&p.Currency, "currency", "", "ISO 4217 currency of the prices, e.g. USD")
	set.Flags().Float64Var(&p.PerGBSecond, "gb-second", 0, "price of one GB-second of billed duration")
	set.Flags().Float64Var(&p.PerMillionRequests, "million-requests", 0, "price of a million invocations")
	set.Flags().Float64Var(&p.PerProvisionedGBSecond, "provisioned-gb-second", 0, "price of one GB-second of a provisioned instance's ready time")
	set.Flags().BoolVar(&freeTier, "free-tier", false, "take Lambda's monthly free tier (400,000 GB-s, 1M requests) off each month")
	set.Flags().Float64Var(&p.FreeGBSeconds, "free-gb-seconds", 0, "GB-seconds free each month")
	set.Flags().Int64Var(&p.FreeRequests, "free-requests", 0, "requests free each month")
	reset := &cobra.Command{
		Use:   "reset [NAMESPACE]",
		Short: "Remove a namespace's own prices (it pays the cluster's), or the cluster's (back to the default) (admin)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := ""
			if len(args) == 1 {
				ns = args[0]
			}
			if err := a.client().ResetPrices(cmd.Context(), ns); err != nil {
				return a.platform(err)
			}
			if ns == "" {
				fmt.Fprintln(a.env.Stdout, "the cluster's prices are the default again")
			} else {
				fmt.Fprintf(a.env.Stdout, "namespace %s pays the cluster's prices again\n", ns)
			}
			return nil
		},
	}
	cmd.AddCommand(getCmd, set, reset)
	return cmd
}

// currentPrices is the table a set starts from: the namespace's (or the
// cluster's) as it applies now.
func (a *app) currentPrices(cmd *cobra.Command, ns string) (client.PriceTable, error) {
	c := a.client()
	if ns != "" {
		c = c.In(ns)
	}
	p, err := c.Prices(cmd.Context(), ns == "")
	if err != nil {
		return client.PriceTable{}, a.platform(err)
	}
	return p.PriceTable, nil
}

func (a *app) printPrices(p client.Prices) error {
	if a.json() {
		return printJSON(a.env.Stdout, p)
	}
	scope := "the cluster"
	if p.Namespace != "" {
		scope = "namespace " + p.Namespace
	}
	fmt.Fprintf(a.env.Stdout, "prices of %s (%s):\n", scope, p.Source)
	t := newTable(a.env.Stdout, "ITEM", "PRICE")
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + " " + p.Currency }
	t.row("per GB-second", num(p.PerGBSecond))
	t.row("per million requests", num(p.PerMillionRequests))
	t.row("per provisioned GB-second", num(p.PerProvisionedGBSecond))
	if p.FreeGBSeconds > 0 || p.FreeRequests > 0 {
		t.row("free each month", fmt.Sprintf("%s GB-s, %d requests", strconv.FormatFloat(p.FreeGBSeconds, 'f', -1, 64), p.FreeRequests))
	}
	return t.flush()
}
