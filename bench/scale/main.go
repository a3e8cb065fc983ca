// Command scale measures a Nimbus cluster at the size real users run
// (issue 22): three (or five) real `nimbus server`s, a thousand simulated
// workers (bench/scale/sim: real agents with their own certificates,
// listeners and heartbeats, and a no-op executor), 100,000 functions,
// 10,000 schedules and up to a million invocation records, then the
// servers' CPU and memory with the workers idle, heartbeat and placement
// latency, API read and invoke latency, schedule lag, a Raft snapshot,
// a follower's restart and leader failovers. It reports each goal as met
// or not; nothing asserts.
//
//	go run ./bench/scale [-servers 3] [-workers 1000] [-functions 100000] [-schedules 10000] [-records 1000000] [-o json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// Config is the run's flags.
type Config struct {
	Servers   int           `json:"servers"`
	Workers   int           `json:"workers"`
	SimProcs  int           `json:"sim_processes"`
	Slots     int           `json:"slots_per_worker"`
	Functions int           `json:"functions"`
	Schedules int           `json:"schedules"`
	Records   int           `json:"records"`
	Clients   int           `json:"clients"`
	Idle      time.Duration `json:"-"`
	Steady    time.Duration `json:"-"`
	Settle    time.Duration `json:"-"`
	Duration  time.Duration `json:"-"`
	InvokeFor time.Duration `json:"-"`
	Save      string        `json:"-"`
	Reads     int           `json:"reads"`
	Kills     int           `json:"kills"`
	Restarts  int           `json:"follower_restarts"`
	Bin       string        `json:"-"`
	Keep      bool          `json:"-"`
	// Profile, when set, is a directory the run writes Go profiles
	// into: the leader's CPU over the quiet minute, every server's heap
	// after it (the servers run with --enable-pprof).
	Profile string `json:"-"`
	// RaftHeartbeat is the servers' --raft-heartbeat-timeout (0: their
	// default).
	RaftHeartbeat time.Duration `json:"raft_heartbeat_timeout_ns,omitempty"`
}

func main() {
	var cfg Config
	var format string
	flag.IntVar(&cfg.Servers, "servers", 3, "servers: 3 or 5")
	flag.IntVar(&cfg.Workers, "workers", 1000, "simulated workers")
	flag.IntVar(&cfg.SimProcs, "sim-procs", 4, "processes the simulated workers are spread over")
	flag.IntVar(&cfg.Slots, "slots", 2, "slots per simulated worker")
	flag.IntVar(&cfg.Functions, "functions", 100000, "functions to deploy")
	flag.IntVar(&cfg.Schedules, "schedules", 10000, "schedules (each every minute, at second i mod 60, on function i)")
	flag.IntVar(&cfg.Records, "records", 1000000, "invocation records to make by invoking (functions past the scheduled ones, in turn)")
	flag.IntVar(&cfg.Clients, "clients", 64, "concurrent API clients while loading")
	flag.DurationVar(&cfg.Idle, "idle", 20*time.Second, "window over which idle CPU is measured")
	flag.DurationVar(&cfg.Steady, "steady", 65*time.Second, "window after the invocations with only the schedules firing: their lag is measured over it")
	flag.DurationVar(&cfg.Settle, "settle", 15*time.Minute, "longest the quiet window waits for the queue the invocations left to drain")
	flag.DurationVar(&cfg.Duration, "duration", 4*time.Minute, "longest each loading phase (deploys, invocations) may run; the count reached is reported")
	flag.DurationVar(&cfg.InvokeFor, "invoke-for", 0, "longest the invocations may run (default: -duration)")
	flag.StringVar(&cfg.Save, "save", "", "also write the result as JSON to this file as soon as it is measured, before the cluster is stopped")
	flag.IntVar(&cfg.Reads, "reads", 100, "times each API read is timed")
	flag.IntVar(&cfg.Kills, "kills", 3, "leader kills (failover rounds)")
	flag.IntVar(&cfg.Restarts, "restarts", 1, "follower restarts (kill -9, start again, until /readyz answers 200), one after another")
	flag.StringVar(&cfg.Bin, "bin", "", "nimbus binary (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the data directory and the logs")
	flag.DurationVar(&cfg.RaftHeartbeat, "raft-heartbeat-timeout", 0, "the servers' --raft-heartbeat-timeout (0: their default)")
	flag.StringVar(&cfg.Profile, "profile", "", "write the leader's CPU profile over the quiet minute and every server's heap profile after it into this directory")
	flag.Parse()
	if (cfg.Servers != 3 && cfg.Servers != 5) || cfg.Workers < 1 || cfg.SimProcs < 1 || cfg.Functions < 1 ||
		cfg.Schedules > cfg.Functions || (format != "table" && format != "json") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if cfg.InvokeFor == 0 {
		cfg.InvokeFor = cfg.Duration
	}
	stats.Main("scale", format, func(ctx context.Context) (*Result, error) { return run(ctx, cfg) }, printTable)
}

// Result is the JSON form of a run.
type Result struct {
	Machine stats.Machine `json:"machine"`
	Load    string        `json:"load_before"` // /proc/loadavg when the run started
	Command string        `json:"command"`
	Config  Config        `json:"config"`

	EnrolSeconds  float64  `json:"enrol_and_start_s"` // the slowest sim process's
	WorkersSeenS  float64  `json:"workers_seen_s"`    // from starting the sims until every server saw them all healthy
	IdleEmpty     []Usage  `json:"idle_empty"`        // workers idle, no functions
	Deploys       Phase    `json:"deploys"`
	SchedulesPut  Phase    `json:"schedules_put"`
	Invokes       Phase    `json:"invokes"`
	RecordsHeld   int      `json:"records_made"`
	IdleFull      []Usage  `json:"idle_full"`      // workers idle, after the deploys (no schedule yet)
	Steady        []Usage  `json:"steady"`         // the schedules firing, nothing else
	Metrics       []Scrape `json:"metrics_scrape"` // each server's /metrics after the invocations
	Heartbeat     []HistQuantile
	Placement     []HistQuantile
	Reads         []Read         `json:"reads"`
	Lag           Lag            `json:"schedule_lag"`        // fires whose slot fell in the steady window
	SettleS       float64        `json:"settle_s"`            // from the invokes' end until the queue was empty (or -settle)
	SettleLeft    int            `json:"settle_left"`         // events still queued when the quiet window began
	LagLoaded     Lag            `json:"schedule_lag_loaded"` // the other fires seen: during the invocations
	Snapshot      Snapshot       `json:"snapshot"`
	RestartS      float64        `json:"follower_restart_to_ready_s"` // the slowest restart's
	Restart       Readiness      `json:"follower_restart"`            // the first
	MoreRestarts  []Readiness    `json:"follower_restarts_more,omitempty"`
	Failovers     []float64      `json:"failover_first_write_ms"`
	FailoverP99MS float64        `json:"failover_p99_ms"`
	Goals         []Goal         `json:"goals"`
	Notes         []cluster.Note `json:"log_notes"`
}

// Goal is one of issue 22's goals.
type Goal struct {
	What  string `json:"what"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

func run(ctx context.Context, cfg Config) (res *Result, err error) {
	load, _ := os.ReadFile("/proc/loadavg")
	res = &Result{Machine: stats.ThisMachine(), Load: strings.TrimSpace(string(load)), Config: cfg,
		Command: strings.Join(append([]string{"go run ./bench/scale"}, os.Args[1:]...), " ")}
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

	say("starting %d servers...", cfg.Servers)
	retention := strconv.Itoa(max(100, 2*cfg.Records/max(cfg.Functions-cfg.Schedules, 1)+10))
	serverArgs := []string{"--records-per-function", retention, "--scan-policy", "off"}
	if cfg.RaftHeartbeat > 0 {
		serverArgs = append(serverArgs, "--raft-heartbeat-timeout", cfg.RaftHeartbeat.String())
	}
	if cfg.Profile != "" {
		if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
			return nil, err
		}
		serverArgs = append(serverArgs, "--enable-pprof")
	}
	c, err := cluster.Start(ctx, cluster.Options{Name: "scale", Bin: cfg.Bin, Keep: cfg.Keep, NoWorker: true, Servers: cfg.Servers,
		ServerArgs: serverArgs})
	if err != nil {
		return nil, err
	}
	defer c.End(&err, &res.Notes)
	sim := filepath.Join(c.Dir, "sim")
	build := exec.CommandContext(ctx, "go", "build", "-o", sim, "nimbus/bench/scale/sim")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build the simulator: %w", err)
	}
	api := cluster.NewAPI(c.Token, cfg.Clients+8)
	var addrs []string
	for _, s := range c.Servers {
		addrs = append(addrs, s.API)
	}
	if _, err := waitWorkers(ctx, api, c, 0, 90*time.Second); err != nil {
		return nil, err
	}

	say("starting %d simulated workers in %d processes...", cfg.Workers, cfg.SimProcs)
	t0 := time.Now()
	per := (cfg.Workers + cfg.SimProcs - 1) / cfg.SimProcs
	for p, first := 0, 0; first < cfg.Workers; p, first = p+1, first+per {
		n := min(per, cfg.Workers-first)
		_, err := c.Spawn(fmt.Sprintf("sim%d", p+1), sim, []string{"-servers", strings.Join(addrs, ","),
			"-token-file", filepath.Join(c.Dir, "token"), "-data", filepath.Join(c.Dir, fmt.Sprintf("sim%d", p+1)),
			"-count", strconv.Itoa(n), "-first", strconv.Itoa(first), "-slots", strconv.Itoa(cfg.Slots)}, nil)
		if err != nil {
			return nil, err
		}
	}
	leaderID, err := waitWorkers(ctx, api, c, cfg.Workers, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	res.WorkersSeenS = stats.Round(time.Since(t0).Seconds())
	res.EnrolSeconds = simReady(c)
	say("every server sees %d healthy workers after %.1fs; leader %s", cfg.Workers, res.WorkersSeenS, leaderID)

	say("idle with no functions: measuring CPU over %v...", cfg.Idle)
	if res.IdleEmpty, err = usage(ctx, c, leaderID, cfg.Idle); err != nil {
		return nil, err
	}
	say("idle, no functions: %+v", res.IdleEmpty)

	code, err := zipB64()
	if err != nil {
		return nil, err
	}
	say("deploying %d functions (%d clients)...", cfg.Functions, cfg.Clients)
	res.Deploys = drive(ctx, addrs, cfg.Functions, cfg.Clients, cfg.Duration, func(ctx context.Context, addr string, i int) error {
		return deploy(ctx, api, addr, code, i)
	})
	say("deploys: %d in %.1fs (%.0f/s), %d failed %s", res.Deploys.Done, res.Deploys.Seconds, res.Deploys.PerSecond, res.Deploys.Failed, res.Deploys.LastError)
	deployed := int(res.Deploys.Done)
	say("idle after deploying, before any schedule: measuring CPU over %v...", cfg.Idle)
	leaderID = currentLeader(ctx, api, c, leaderID)
	if res.IdleFull, err = usage(ctx, c, leaderID, cfg.Idle); err != nil {
		return nil, err
	}
	say("idle, after deploys: %+v", res.IdleFull)
	nsched := min(cfg.Schedules, deployed)
	say("putting %d schedules...", nsched)
	res.SchedulesPut = drive(ctx, addrs, nsched, cfg.Clients, cfg.Duration, func(ctx context.Context, addr string, i int) error {
		return putSchedule(ctx, api, addr, i)
	})
	say("schedules: %d in %.1fs, %d failed %s", res.SchedulesPut.Done, res.SchedulesPut.Seconds, res.SchedulesPut.Failed, res.SchedulesPut.LastError)

	pool := max(deployed-nsched, 1)
	say("invoking %d times over functions %d..%d (%d clients)...", cfg.Records, nsched, nsched+pool-1, cfg.Clients)
	before, _ := scrapeAll(ctx, api, c)
	res.Invokes = drive(ctx, addrs, cfg.Records, cfg.Clients, cfg.InvokeFor, func(ctx context.Context, addr string, i int) error {
		return invoke(ctx, api, addr, nsched+i%pool)
	})
	res.RecordsHeld = int(res.Invokes.Done)
	say("invokes: %d in %.1fs (%.0f/s), p99 %.1f ms, %d failed %s", res.Invokes.Done, res.Invokes.Seconds, res.Invokes.PerSecond,
		res.Invokes.Latency.P99MS, res.Invokes.Failed, res.Invokes.LastError)
	say("reading every server's /metrics...")
	after, scrapes := scrapeAll(ctx, api, c)
	res.Metrics = scrapes
	for i, s := range c.Servers {
		res.Heartbeat = append(res.Heartbeat, after[i][hbName].sub(before[i][hbName]).summary(s.ID))
		res.Placement = append(res.Placement, after[i][pickName].sub(before[i][pickName]).summary(s.ID))
	}
	say("/metrics: %+v; heartbeat p99: %+v; pick p99: %+v", scrapes, res.Heartbeat, res.Placement)

	// A quiet minute (and a few seconds) with the schedules firing and
	// nothing else: the lag measured over it is the scheduler's, not the
	// invoke load's, so it starts once the queue the load left behind
	// (fires late by seconds) has drained.
	took, left := settle(ctx, api, c, cfg.Settle)
	res.SettleS, res.SettleLeft = took.Seconds(), left
	say("queue drained %.1f s after the invokes (%d events left)", res.SettleS, left)
	steadyFrom := time.Now()
	if nsched > 0 {
		say("schedules firing, nothing else: measuring CPU over %v...", cfg.Steady)
		leaderID = currentLeader(ctx, api, c, leaderID)
		cpuProfile := profileCPU(ctx, api, c, leaderID, cfg.Profile, cfg.Steady)
		if res.Steady, err = usage(ctx, c, leaderID, cfg.Steady); err != nil {
			return nil, err
		}
		cpuProfile()
		profileHeaps(ctx, api, c, cfg.Profile)
		say("schedules firing: %+v", res.Steady)
	}
	steadyTo := time.Now()
	leaderID = currentLeader(ctx, api, c, leaderID)
	say("timing API reads (leader %s)...", leaderID)
	var leader, follower *cluster.Proc
	for _, s := range c.Servers {
		if s.ID == leaderID {
			leader = s
		} else if follower == nil {
			follower = s
		}
	}
	// GET /v1/functions without a limit is the default page of 100 (a
	// list is always paged: the whole of 100,000 functions would be tens
	// of MB).
	res.Reads = reads(ctx, api, []string{follower.API, leader.API}, []string{
		"/v1/functions?limit=100", "/v1/functions?limit=100&after=" + fnName(deployed/2), "/v1/functions", "/v1/functions/" + fnName(deployed/2),
		"/v1/invocations?limit=100"}, cfg.Reads)
	for _, rd := range res.Reads {
		say("GET %s (%d bytes): p50 %.1f ms p99 %.1f ms (n=%d, failed %d)", rd.Path, rd.Bytes, rd.Latency.P50MS, rd.Latency.P99MS, rd.Latency.N, rd.Failed)
	}
	if nsched > 0 {
		say("reading schedule lag...")
		res.LagLoaded, res.Lag = scheduleLag(ctx, api, follower.API, nsched, 300, steadyFrom, steadyTo)
		say("schedule lag, quiet: %+v; loaded: %+v", res.Lag, res.LagLoaded)
	}
	say("saving a snapshot through the leader...")
	res.Snapshot = saveSnapshot(ctx, c, leader)
	say("snapshot: %+v", res.Snapshot)
	for k := range max(cfg.Restarts, 1) {
		say("restarting follower %s...", follower.ID)
		r, err := restart(ctx, api, follower)
		if err != nil {
			return nil, err
		}
		if k == 0 {
			res.Restart = r
		} else {
			res.MoreRestarts = append(res.MoreRestarts, r)
		}
		res.RestartS = max(res.RestartS, r.ReadyS)
		say("follower restart: %+v", r)
	}
	var fo []time.Duration
	for k := range cfg.Kills {
		l, err := waitWorkers(ctx, api, c, cfg.Workers, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		var lp *cluster.Proc
		for _, s := range c.Servers {
			if s.ID == l {
				lp = s
			}
		}
		took, via, err := failover(ctx, api, c, lp, code)
		if err != nil {
			return nil, fmt.Errorf("failover %d: %w", k+1, err)
		}
		say("failover %d: killed %s, first write through %s after %.0f ms", k+1, l, via, stats.MS(took))
		fo = append(fo, took)
		res.Failovers = append(res.Failovers, stats.MS(took))
	}
	res.FailoverP99MS = stats.Summarize(fo).P99MS
	res.Goals = goals(res)
	if cfg.Save != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("-save: %w", err)
		}
		if err := os.WriteFile(cfg.Save, b, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

const (
	hbName   = "nimbus_worker_heartbeat_seconds"
	pickName = "nimbus_placement_pick_seconds"
)

func scrapeAll(ctx context.Context, api *cluster.API, c *cluster.Cluster) ([]map[string]histogram, []Scrape) {
	out := make([]map[string]histogram, len(c.Servers))
	var scrapes []Scrape
	for i, s := range c.Servers {
		h, sc, _ := scrapeHistograms(ctx, api, s.API, hbName, pickName)
		sc.Server = s.ID
		out[i], scrapes = h, append(scrapes, sc)
	}
	return out, scrapes
}

// simReady reads the slowest sim process's enrolment time from its log.
func simReady(c *cluster.Cluster) float64 {
	most := 0.0
	for _, p := range c.Others {
		b, _ := os.ReadFile(p.Log)
		if _, after, ok := strings.Cut(string(b), "enrol_and_start_ms="); ok {
			f, _, _ := strings.Cut(after, "\n")
			ms, _ := strconv.ParseFloat(strings.TrimSpace(f), 64)
			most = max(most, ms/1000)
		}
	}
	return stats.Round(most)
}

// currentLeader is the leader the first server that answers names, or
// last when none does (leadership may move under load: the roles of a
// window are those at its start).
func currentLeader(ctx context.Context, api *cluster.API, c *cluster.Cluster, last string) string {
	for _, s := range c.Servers {
		if l, _, err := leaderOf(ctx, api, s.API); err == nil && l != "" {
			if l != last {
				fmt.Fprintf(os.Stderr, "the leader is now %s (was %s)\n", l, last)
			}
			return l
		}
	}
	return last
}
