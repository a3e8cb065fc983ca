// Command async measures Nimbus's asynchronous path on a three-server
// cluster: durable enqueue throughput, end-to-end completions of a no-op
// function, and the scheduler's lag with many schedules (issue 5).
//
// It builds nimbus (unless -bin names a binary), starts three servers on
// free 127.0.0.1 ports with --bootstrap-expect 3 and a shared token, and
// one unsandboxed worker with -slots slots, deploys two no-op Python
// functions, and then:
//
//   - posts -events async invocations (X-Nimbus-Invocation-Type: async)
//     from -clients concurrent keep-alive clients spread over the three
//     servers (a follower forwards to the leader), and reports the
//     acknowledged events per second and the p50/p99 time to the 202;
//   - polls the invocation records until every acknowledged request ID is
//     terminal, and reports completions per second from the first
//     submission to the last record's end;
//   - creates -schedules schedules "@every 10s" on the second function and
//     collects their fire records for -window, reporting the lag of each
//     fire (the record's enqueued_at minus its slot) at p50/p99.
//
// Nothing asserts a time: it reports against the goals (at least
// 2,000 acknowledged events/s, lag p99 under 1 s).
//
//	go run ./bench/async [-events 5000] [-schedules 10000] [-o json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// Issue 5's goals.
const (
	goalAckedPerS = 2000
	goalLagP99    = time.Second
)

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine stats.Machine `json:"machine"`
	Command string        `json:"command"`
	// Worker describes the one worker: the function runs unsandboxed.
	Worker string `json:"worker"`

	Enqueue   Enqueue    `json:"enqueue"`
	Schedules *Schedules `json:"schedules,omitempty"`

	GoalAckedPerS  float64        `json:"goal_acked_per_s"`
	GoalLagP99MS   float64        `json:"goal_lag_p99_under_ms"`
	AckGoalMet     bool           `json:"ack_goal_met"`
	LagGoalMet     bool           `json:"lag_goal_met"`
	ServerLogNotes []cluster.Note `json:"server_log_notes"`
}

type bench struct {
	c   *cluster.Cluster
	api *cluster.API
}

type options struct {
	events, schedules, clients, slots int
	window                            time.Duration
	bin                               string
	keep                              bool
}

func main() {
	var (
		o      options
		format string
	)
	flag.IntVar(&o.events, "events", 5000, "async events to post (at most 10000: the records are read back through one list)")
	flag.IntVar(&o.schedules, "schedules", 10000, "schedules to create (0 skips part 3)")
	flag.IntVar(&o.clients, "clients", 64, "concurrent keep-alive clients")
	flag.IntVar(&o.slots, "slots", 4, "the worker's slots")
	flag.DurationVar(&o.window, "window", 25*time.Second, "how long to collect schedule fires")
	flag.StringVar(&o.bin, "bin", "", "nimbus binary to start (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and the processes' logs")
	flag.Parse()
	if o.events < 1 || o.events > 10000 || o.schedules < 0 || o.clients < 1 || o.slots < 1 ||
		(format != "table" && format != "json") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stats.Main("async", format, func(ctx context.Context) (*Result, error) { return run(ctx, o) }, printTable)
}

func run(ctx context.Context, o options) (res *Result, err error) {
	res = &Result{
		Machine:       stats.ThisMachine(),
		Command:       strings.Join(append([]string{"go run ./bench/async"}, os.Args[1:]...), " "),
		Worker:        fmt.Sprintf("one worker, --slots %d --insecure-no-sandbox (the queue is measured, not the sandbox)", o.slots),
		GoalAckedPerS: goalAckedPerS,
		GoalLagP99MS:  stats.MS(goalLagP99),
	}
	fmt.Fprintln(os.Stderr, "starting three servers and a worker...")
	c, err := cluster.Start(ctx, cluster.Options{Name: "async", Bin: o.bin, Slots: o.slots, Keep: o.keep})
	if err != nil {
		return nil, err
	}
	defer c.End(&err, &res.ServerLogNotes)
	b := &bench{c: c, api: cluster.NewAPI(c.Token, o.clients)}
	leader, err := b.api.Settle(ctx, c, 90*time.Second)
	if err != nil {
		return nil, fmt.Errorf("the cluster did not settle after starting: %w", err)
	}
	// Records are read from a follower, to leave the leader its work.
	poll := c.Servers[(leader+1)%len(c.Servers)].API
	for _, fn := range []string{"noop", "tick"} {
		if err := b.api.Deploy(ctx, c.Servers[leader].API, fn, cluster.NoOp); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "leader %s; posting %d async events from %d clients...\n", c.Servers[leader].ID, o.events, o.clients)
	res.Enqueue, err = b.enqueue(ctx, "noop", o.events, o.clients, poll, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	res.AckGoalMet = res.Enqueue.AckedPerSec >= goalAckedPerS && res.Enqueue.Refused == 0
	if o.schedules > 0 {
		fmt.Fprintf(os.Stderr, "creating %d schedules...\n", o.schedules)
		s, err := b.schedules(ctx, "tick", o.schedules, o.clients, poll, o.window)
		if err != nil {
			return nil, err
		}
		res.Schedules = &s
		res.LagGoalMet = s.LagP99MS < res.GoalLagP99MS && s.NotFired == 0
	}
	return res, nil
}

func printTable(w io.Writer, res *Result) {
	e := res.Enqueue
	fmt.Fprintf(w, "async path of a 3-server cluster on 127.0.0.1; %s\n", res.Worker)
	fmt.Fprintf(w, "%d CPUs %s, kernel %s, %s; %s\n", res.Machine.NumCPU, res.Machine.CPU, res.Machine.Kernel, res.Machine.Go, res.Machine.Date)
	fmt.Fprintf(w, "\n1. durable enqueue: %d events from %d clients over 3 servers (acked per server %v)\n", e.Events, e.Clients, e.PerServerAck)
	fmt.Fprintf(w, "   acknowledged %d (refused %d) in %.2f s: %.0f events/s\n", e.Acked, e.Refused, e.AckSeconds, e.AckedPerSec)
	if e.Refused > 0 {
		fmt.Fprintf(w, "   last refusal: %s\n", e.LastRefusal)
	}
	s := e.AckLatency
	fmt.Fprintf(w, "   ack latency ms: min %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f\n", s.MinMS, s.P50MS, s.P90MS, s.P99MS, s.MaxMS)
	fmt.Fprintf(w, "\n2. end to end: %d succeeded, %d failed, %d unfinished, %d without a record, %d ran more than once\n",
		e.Succeeded, e.Failed, e.Unfinished, e.Missing, e.Attempts2)
	fmt.Fprintf(w, "   last completion %.2f s after the first submission: %.0f completions/s (a poll saw all done at %.1f s)\n",
		e.CompleteSeconds, e.CompletionsPerS, e.SeenCompleteSeconds)
	if sc := res.Schedules; sc != nil {
		fmt.Fprintf(w, "\n3. scheduler lag: %d schedules %q on one function (created in %.1f s, %d refused)\n",
			sc.Schedules, sc.Expr, sc.CreateSeconds, sc.CreateRefused)
		fmt.Fprintf(w, "   slots %s: %d of %d expected fires seen, %d not fired; missed counters total %d\n",
			strings.Join(sc.Slots, ", "), sc.Fires, sc.Expected, sc.NotFired, sc.MissedTotal)
		l, r, p := sc.Lag, sc.RecordedLag, sc.PollMS
		fmt.Fprintf(w, "   lag ms, first seen on a follower - slot: min %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f (polls took p50 %.0f ms, max %.0f ms)\n",
			l.MinMS, l.P50MS, l.P90MS, l.P99MS, l.MaxMS, p.P50MS, p.MaxMS)
		fmt.Fprintf(w, "   lag ms, record's enqueued_at - slot (the start of the scheduler's pass): min %.1f p50 %.1f p99 %.1f max %.1f\n",
			r.MinMS, r.P50MS, r.P99MS, r.MaxMS)
		for _, p := range sc.PerSlot {
			fmt.Fprintf(w, "   slot %s: %d fires, first seen at +%.0f ms, last at +%.0f ms\n", p.Slot, p.Fires, p.FirstMS, p.LastMS)
		}
	}
	fmt.Fprintln(w)
	for _, n := range res.ServerLogNotes {
		fmt.Fprintf(w, "log of %s: %d warnings, %d errors\n", n.Process, n.Warnings, n.Errors)
		for _, m := range n.Samples {
			fmt.Fprintf(w, "   %s\n", m)
		}
	}
	verdict := func(b bool) string {
		if b {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\ngoal (issue 5): at least %.0f acknowledged events/s: %s (%.0f/s)\n", res.GoalAckedPerS, verdict(res.AckGoalMet), e.AckedPerSec)
	if res.Schedules != nil {
		fmt.Fprintf(w, "goal (issue 5): lag p99 under %.0f ms with %d schedules: %s (p99 %.1f ms, %d not fired)\n",
			res.GoalLagP99MS, res.Schedules.Schedules, verdict(res.LagGoalMet), res.Schedules.LagP99MS, res.Schedules.NotFired)
	}
}
