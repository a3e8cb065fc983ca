// Command drain measures whether Nimbus's asynchronous queue keeps up
// with its workers (issue 23): on a three-server cluster with sandboxed
// workers, it measures, for each count of functions (-functions, e.g. 1,
// 30 and 300), how many synchronous invokes per second the workers
// serve, then how many asynchronous events per second the queue
// completes on the same functions and workers, and reports the ratio
// (the goal: at least 0.8). A paced phase then sends events at half the
// synchronous rate and reports how far completions trail arrivals.
//
// It builds nimbus (unless -bin names one), starts the cluster with
// bench/internal/cluster, deploys the functions once (a no-op, or a
// handler that sleeps -work), and runs -runs rounds, each measuring
// every function count in turn, so that the counts share the machine's
// noise. Nothing asserts a time.
//
//	go run ./bench/drain [-functions 1,30,300] [-runs 3] [-workers 2] [-slots 2] [-o json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// goalRatio is issue 23's goal: async completions/s at least 0.8 x sync
// invokes/s of the same functions on the same workers.
const goalRatio = 0.8

type options struct {
	functions        []int
	runs             int
	workers, slots   int
	clients, posters int
	syncFor, paceFor time.Duration
	work             time.Duration
	sandbox          bool
	bin              string
	keep             bool
	workerArgs       []string
}

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine stats.Machine `json:"machine"`
	Command string        `json:"command"`
	Workers string        `json:"workers"`
	Handler string        `json:"handler"`
	Rounds  []Round       `json:"rounds"`
	// Summary has one line per function count: the ratios of every round.
	Summary   []Summary      `json:"summary"`
	GoalRatio float64        `json:"goal_ratio"`
	LogNotes  []cluster.Note `json:"log_notes"`
}

// Round is one measurement of one function count.
type Round struct {
	Round     int      `json:"round"`
	Functions int      `json:"functions"`
	Sync      Sync     `json:"sync"`
	Async     Async    `json:"async"`
	Ratio     float64  `json:"async_over_sync"`
	Backlog   *Backlog `json:"backlog,omitempty"`
	Mixed     *Mixed   `json:"mixed,omitempty"`
	Paced     *Paced   `json:"paced,omitempty"`
}

// Summary gathers the rounds of one function count.
type Summary struct {
	Functions int       `json:"functions"`
	SyncPerS  []float64 `json:"sync_per_s"`
	AsyncPerS []float64 `json:"async_per_s"`
	Ratios    []float64 `json:"ratios"`
	GoalMet   int       `json:"goal_met"` // rounds whose ratio met the goal
	// The same for the drain of a backlog (Backlog).
	DrainPerS    []float64 `json:"drain_per_s"`
	DrainRatios  []float64 `json:"drain_ratios"`
	DrainGoalMet int       `json:"drain_goal_met"`
}

func main() {
	var (
		o         options
		format    string
		functions string
		extra     string
	)
	flag.StringVar(&functions, "functions", "1,30,300", "function counts to measure, comma-separated")
	flag.IntVar(&o.runs, "runs", 3, "rounds over every function count")
	flag.IntVar(&o.workers, "workers", 2, "workers")
	flag.IntVar(&o.slots, "slots", 2, "each worker's slots")
	flag.IntVar(&o.clients, "clients", 16, "concurrent keep-alive clients of the sync phase")
	flag.IntVar(&o.posters, "posters", 64, "concurrent keep-alive clients posting async events (an acknowledgement waits for a Raft commit: few clients would bound the arrival rate, not the queue)")
	flag.DurationVar(&o.syncFor, "sync-for", 8*time.Second, "how long the synchronous phase sends")
	flag.DurationVar(&o.paceFor, "pace-for", 8*time.Second, "how long the paced phase sends (0 skips it)")
	flag.DurationVar(&o.work, "work", 0, "how long each handler sleeps (0: a no-op handler)")
	flag.BoolVar(&o.sandbox, "sandbox", true, "run the workers sandboxed (needs root)")
	flag.StringVar(&extra, "worker-args", "", "more flags for every worker, space-separated")
	flag.StringVar(&o.bin, "bin", "", "nimbus binary to start (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and the processes' logs")
	flag.Parse()
	var err error
	if o.functions, err = stats.Ints("functions", functions, 1, 1000); err != nil {
		fmt.Fprintf(os.Stderr, "drain: %v\n", err)
		os.Exit(2)
	}
	o.workerArgs = strings.Fields(extra)
	if o.runs < 1 || o.workers < 1 || o.slots < 1 || o.clients < 1 || o.posters < 1 || o.syncFor < time.Second ||
		(format != "table" && format != "json") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stats.Main("drain", format, func(ctx context.Context) (*Result, error) { return run(ctx, o) }, printTable)
}

// handler is the source of the functions measured.
func handler(work time.Duration) string {
	if work <= 0 {
		return cluster.NoOp
	}
	return fmt.Sprintf("import time\ndef handler(e,c):\n    time.sleep(%g)\n", work.Seconds())
}

func run(ctx context.Context, o options) (res *Result, err error) {
	mode := "sandboxed"
	if !o.sandbox {
		mode = "--insecure-no-sandbox"
	}
	res = &Result{
		Machine:   stats.ThisMachine(),
		Command:   strings.Join(append([]string{"go run ./bench/drain"}, os.Args[1:]...), " "),
		Workers:   fmt.Sprintf("%d workers, --slots %d each, %s %s", o.workers, o.slots, mode, strings.Join(o.workerArgs, " ")),
		Handler:   strings.TrimSpace(handler(o.work)),
		GoalRatio: goalRatio,
	}
	fmt.Fprintf(os.Stderr, "starting three servers and %d workers...\n", o.workers)
	c, err := cluster.Start(ctx, cluster.Options{Name: "drain", Bin: o.bin, Slots: o.slots, Workers: o.workers,
		Sandbox: o.sandbox, WorkerArgs: o.workerArgs, Keep: o.keep,
		// Every acknowledged event's record is read back: keep them all.
		ServerArgs: []string{"--records-per-function", "100000"}})
	if err != nil {
		return nil, err
	}
	defer c.End(&err, &res.LogNotes)
	api := cluster.NewAPI(c.Token, max(o.clients, o.posters))
	leader, err := api.Settle(ctx, c, 90*time.Second)
	if err != nil {
		return nil, fmt.Errorf("the cluster did not settle after starting: %w", err)
	}
	most := 0
	for _, n := range o.functions {
		most = max(most, n)
	}
	fmt.Fprintf(os.Stderr, "leader %s; deploying %d functions...\n", c.Servers[leader].ID, most)
	src := handler(o.work)
	for i := range most {
		if err := api.Deploy(ctx, c.Servers[leader].API, fnName(i), src); err != nil {
			return nil, err
		}
	}
	b := &bench{c: c, api: api, o: o, leader: leader}
	for r := 1; r <= o.runs; r++ {
		for _, n := range o.functions {
			fmt.Fprintf(os.Stderr, "round %d, %d functions...\n", r, n)
			round, err := b.round(ctx, r, n)
			if err != nil {
				return res, err
			}
			res.Rounds = append(res.Rounds, round)
		}
	}
	res.Summary = summarize(res.Rounds, o.functions)
	return res, nil
}

func fnName(i int) string { return fmt.Sprintf("d%03d", i) }

func summarize(rounds []Round, counts []int) []Summary {
	var out []Summary
	for _, n := range counts {
		s := Summary{Functions: n}
		for _, r := range rounds {
			if r.Functions != n {
				continue
			}
			s.SyncPerS = append(s.SyncPerS, r.Sync.PerS)
			s.AsyncPerS = append(s.AsyncPerS, r.Async.PerS)
			s.Ratios = append(s.Ratios, r.Ratio)
			if r.Ratio >= goalRatio {
				s.GoalMet++
			}
			if bl := r.Backlog; bl != nil {
				s.DrainPerS = append(s.DrainPerS, bl.PerS)
				s.DrainRatios = append(s.DrainRatios, bl.Ratio)
				if bl.Ratio >= goalRatio {
					s.DrainGoalMet++
				}
			}
		}
		out = append(out, s)
	}
	return out
}

func printTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "async drain against sync invokes on a 3-server cluster on 127.0.0.1; %s\n", res.Workers)
	fmt.Fprintf(w, "handler: %s\n", strings.ReplaceAll(res.Handler, "\n", "; "))
	fmt.Fprintf(w, "%d CPUs %s, kernel %s, %s; %s\n\n", res.Machine.NumCPU, res.Machine.CPU, res.Machine.Kernel, res.Machine.Go, res.Machine.Date)
	fmt.Fprintf(w, "%5s %5s | %9s %6s | %7s %9s %9s %6s %5s | %6s | %s\n",
		"round", "fns", "sync/s", "429s", "events", "acked/s", "async/s", "cold", "left", "ratio", "paced (rate/s: trailing s, left)")
	for _, r := range res.Rounds {
		paced := "-"
		if p := r.Paced; p != nil {
			paced = fmt.Sprintf("%.0f: %.2f s, %d", p.RatePerS, p.TrailSeconds, p.Unfinished)
		}
		fmt.Fprintf(w, "%5d %5d | %9.0f %6d | %7d %9.0f %9.0f %6d %5d | %6.2f | %s\n",
			r.Round, r.Functions, r.Sync.PerS, r.Sync.Throttled, r.Async.Acked, r.Async.AckedPerS, r.Async.PerS,
			r.Async.ColdStarts, r.Async.Unfinished, r.Ratio, paced)
	}
	fmt.Fprintf(w, "\na backlog posted while the workers were drained, then undrained (rate from the first run's start to the last one's end):\n")
	for _, r := range res.Rounds {
		if bl := r.Backlog; bl != nil {
			fmt.Fprintf(w, "round %d, %d functions: %d events drained in %.2f s: %.0f/s, %.2f x sync; %d unfinished, %d refused\n",
				r.Round, r.Functions, bl.Succeeded, bl.DrainSeconds, bl.PerS, bl.Ratio, bl.Unfinished, bl.Refused)
		}
	}
	fmt.Fprintf(w, "\nsync calls while an async backlog drains:\n")
	for _, r := range res.Rounds {
		if m := r.Mixed; m != nil {
			fmt.Fprintf(w, "round %d, %d functions: %.0f sync/s (alone %.0f/s), 429s %d of %d (%.2f%%), other %d; backlog left when they stopped %d; backlog of %d acked: %d unfinished\n",
				r.Round, r.Functions, m.Sync.PerS, r.Sync.PerS, m.Sync.Throttled, m.Sync.OK+m.Sync.Throttled+m.Sync.Other,
				m.ThrottledPct, m.Sync.Other, m.BacklogAtEnd, m.Async.Acked, m.Async.Unfinished)
		}
	}
	fmt.Fprintln(w)
	for _, s := range res.Summary {
		fmt.Fprintf(w, "%d functions: async/sync %s (goal %.1f met in %d of %d rounds); backlog drain/sync %s (met in %d of %d)\n",
			s.Functions, floats(s.Ratios), res.GoalRatio, s.GoalMet, len(s.Ratios), floats(s.DrainRatios), s.DrainGoalMet, len(s.DrainRatios))
	}
	fmt.Fprintln(w)
	for _, n := range res.LogNotes {
		fmt.Fprintf(w, "log of %s: %d warnings, %d errors\n", n.Process, n.Warnings, n.Errors)
		for _, m := range n.Samples {
			fmt.Fprintf(w, "   %s\n", m)
		}
	}
}

func floats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'f', 2, 64)
	}
	return strings.Join(s, ", ")
}
