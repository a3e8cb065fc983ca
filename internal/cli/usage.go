package cli

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// csvAnnotation marks the commands that also print -o csv.
const csvAnnotation = "csv"

func (a *app) usageCommand() *cobra.Command {
	var (
		q            client.UsageQuery
		since, until string
	)
	cmd := &cobra.Command{
		Use:   "usage [--function F] [--since T] [--until T] [--by day|hour|function|namespace] [--all-namespaces]",
		Short: "What the namespace's functions used: requests, errors, GB-seconds, CPU, durations (default: this month)",
		Long: `usage adds up what the functions of the namespace you act in used over a
window, from the cluster's metric history, which outlives the invocation
records (days for 2 years, hours for 90 days by default). --since and
--until take a date (2026-12-01), a time (2026-12-01T15:00:00Z) or a
duration back from now (36h, 7d); by default the window is the current
month (UTC) to now. An admin reads every namespace with --all-namespaces.
-o json and -o csv print the rows for other tools.`,
		Annotations: map[string]string{csvAnnotation: "yes"},
		Args:        usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var err error
			if q.Since, err = whenFlag("--since", since, now); err != nil {
				return err
			}
			if q.Until, err = whenFlag("--until", until, now); err != nil {
				return err
			}
			u, err := a.client().Usage(cmd.Context(), q)
			if err != nil {
				return a.platform(err)
			}
			return a.printUsage(u)
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Function, "function", "", "one function only")
	f.StringVar(&since, "since", "", "start of the window: a date, an RFC 3339 time, or a duration ago such as 7d (default: the month's start)")
	f.StringVar(&until, "until", "", "end of the window, like --since (default: now)")
	f.StringVar(&q.By, "by", "", "a row per day, hour, function or namespace (default: one total)")
	f.BoolVar(&q.AllNamespaces, "all-namespaces", false, "every namespace (admin)")
	return cmd
}

// whenFlag reads a --since/--until value: a date, an RFC 3339 time, or a
// duration back from now (with d for days).
func whenFlag(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: want a date (2026-12-01), a time (2026-12-01T15:00:00Z) or a duration ago (36h, 7d)", flag, v)
}

func (a *app) printUsage(u client.Usage) error {
	if a.json() {
		return printJSON(a.env.Stdout, u)
	}
	var key []string
	switch u.By {
	case client.UsageByDay, client.UsageByHour:
		key = []string{"START"}
	case client.UsageByNS:
		key = []string{"NAMESPACE"}
	case client.UsageByFunction:
		key = []string{"NAMESPACE", "FUNCTION"}
	}
	keyOf := func(r client.UsageRow, machine bool) []string {
		switch u.By {
		case client.UsageByDay:
			return []string{r.Start.Format(time.DateOnly)}
		case client.UsageByHour:
			if machine {
				return []string{r.Start.Format(time.RFC3339)}
			}
			return []string{r.Start.Local().Format("2006-01-02 15:04")}
		case client.UsageByNS:
			return []string{r.Namespace}
		case client.UsageByFunction:
			return []string{r.Namespace, r.Function}
		}
		return nil
	}
	if a.output == "csv" {
		w := csv.NewWriter(a.env.Stdout)
		lower := make([]string, len(key))
		for i, k := range key {
			lower[i] = strings.ToLower(k)
		}
		w.Write(append(lower, "requests", "errors", "throttles", "cold_starts", "billed_ms", "gb_seconds", "cpu_seconds",
			"p50_ms", "p90_ms", "p99_ms", "avg_ms", "max_memory_mb", "provisioned_gb_seconds"))
		num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
		for _, r := range u.Rows {
			w.Write(append(keyOf(r, true), strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Errors, 10),
				strconv.FormatInt(r.Throttles, 10), strconv.FormatInt(r.ColdStarts, 10), strconv.FormatInt(r.BilledMS, 10),
				num(r.GBSeconds), num(r.CPUSeconds), num(r.P50MS), num(r.P90MS), num(r.P99MS), num(r.AvgMS),
				strconv.FormatInt(r.MaxMemoryMB, 10), num(r.ProvisionedGBSeconds)))
		}
		w.Flush()
		return w.Error()
	}
	fmt.Fprintf(a.env.Stdout, "usage from %s to %s\n", u.Since.Local().Format("2006-01-02 15:04"), u.Until.Local().Format("2006-01-02 15:04"))
	t := newTable(a.env.Stdout, append(key, "REQUESTS", "ERRORS", "THROTTLES", "COLD", "GB-S", "CPU-S", "P50", "P90", "P99", "MAX MEM")...)
	for _, r := range u.Rows {
		t.row(append(keyOf(r, false), strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Errors, 10),
			strconv.FormatInt(r.Throttles, 10), strconv.FormatInt(r.ColdStarts, 10), fmt.Sprintf("%.3f", r.GBSeconds),
			fmt.Sprintf("%.3f", r.CPUSeconds), ms(r.P50MS, r.Requests), ms(r.P90MS, r.Requests), ms(r.P99MS, r.Requests),
			fmt.Sprintf("%d MB", r.MaxMemoryMB))...)
	}
	if len(u.Rows) == 0 {
		t.row(append(make([]string, len(key)), "0", "0", "0", "0", "0.000", "0.000", "", "", "", "")...)
	}
	return t.flush()
}

// ms renders a percentile, "-" when nothing ran.
func ms(v float64, n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f ms", v)
}

func (a *app) costCommand() *cobra.Command {
	var (
		month string
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "cost [--month YYYY-MM] [--all-namespaces]",
		Short: "What the namespace's month costs at its prices, and the forecast for the whole month",
		Long: `cost prices a month's usage (default: the current month, UTC) of the
namespace you act in at the prices that apply to it (nimbus prices), the
month's free tier taken off first, and forecasts the whole month from the
rate of the last seven days. An admin reads every namespace with
--all-namespaces. -o json and -o csv print it for other tools.`,
		Annotations: map[string]string{csvAnnotation: "yes"},
		Args:        usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if month != "" {
				if _, err := time.Parse("2006-01", month); err != nil {
					return usagef("--month %q: want a month such as 2026-12 (YYYY-MM)", month)
				}
			}
			rep, err := a.client().Cost(cmd.Context(), month, all)
			if err != nil {
				return a.platform(err)
			}
			return a.printCost(rep)
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (default: the current one)")
	cmd.Flags().BoolVar(&all, "all-namespaces", false, "every namespace (admin)")
	return cmd
}

func (a *app) printCost(rep client.CostReport) error {
	if a.json() {
		return printJSON(a.env.Stdout, rep)
	}
	if a.output == "csv" {
		w := csv.NewWriter(a.env.Stdout)
		w.Write([]string{"month", "namespace", "currency", "requests", "gb_seconds", "billed_requests", "billed_gb_seconds",
			"request_cost", "compute_cost", "total", "forecast_requests", "forecast_gb_seconds", "forecast_total", "complete",
			"provisioned_gb_seconds", "provisioned_cost"})
		num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
		for _, c := range rep.Namespaces {
			w.Write([]string{rep.Month, c.Namespace, c.Prices.Currency, strconv.FormatInt(c.Requests, 10), num(c.GBSeconds),
				strconv.FormatInt(c.BilledRequests, 10), num(c.BilledGBSeconds), num(c.RequestCost), num(c.ComputeCost),
				num(c.Total), strconv.FormatInt(c.Forecast.Requests, 10), num(c.Forecast.GBSeconds), num(c.Forecast.Total),
				strconv.FormatBool(rep.Complete), num(c.ProvisionedGBSeconds), num(c.ProvisionedCost)})
		}
		w.Flush()
		return w.Error()
	}
	state := "so far, to " + rep.To.Local().Format("2006-01-02 15:04")
	if rep.Complete {
		state = "complete"
	}
	fmt.Fprintf(a.env.Stdout, "cost of %s (%s)\n", rep.Month, state)
	t := newTable(a.env.Stdout, "NAMESPACE", "REQUESTS", "GB-S", "REQUESTS COST", "COMPUTE COST", "PROVISIONED COST", "TOTAL", "FORECAST")
	for _, c := range rep.Namespaces {
		t.row(c.Namespace, strconv.FormatInt(c.Requests, 10), fmt.Sprintf("%.3f", c.GBSeconds), money(c.RequestCost, c.Prices.Currency),
			money(c.ComputeCost, c.Prices.Currency), money(c.ProvisionedCost, c.Prices.Currency), money(c.Total, c.Prices.Currency),
			money(c.Forecast.Total, c.Prices.Currency))
	}
	return t.flush()
}

// money renders an amount to the cent, with its currency.
func money(v float64, currency string) string {
	return fmt.Sprintf("%.2f %s", v, currency)
}
