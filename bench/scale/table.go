package main

import (
	"fmt"
	"io"
	"strings"
)

// goals are issue 22's, each met or not.
func goals(r *Result) []Goal {
	var out []Goal
	add := func(what, value string, met bool) { out = append(out, Goal{what, value, met}) }
	for _, u := range r.IdleFull {
		if u.Role == "leader" {
			add(fmt.Sprintf("leader CPU < 50%% of one core, workers idle (%d functions)", r.Deploys.Done), fmt.Sprintf("%.1f%%", u.CPUPct), u.CPUPct < 50)
		}
	}
	for _, u := range r.IdleEmpty {
		if u.Role == "leader" {
			add("leader CPU < 50% of one core, workers idle (no functions)", fmt.Sprintf("%.1f%%", u.CPUPct), u.CPUPct < 50)
		}
	}
	for _, rd := range r.Reads {
		add("GET "+rd.Path+" p99 < 50 ms", fmt.Sprintf("%.1f ms", rd.Latency.P99MS), rd.Latency.N > 0 && rd.Latency.P99MS < 50)
	}
	if r.Lag.Fires > 0 {
		add("schedule lag p99 < 1 s (quiet minute)", fmt.Sprintf("%.0f ms (%d fires)", r.Lag.Lag.P99MS, r.Lag.Fires), r.Lag.Lag.P99MS < 1000)
	}
	add("failover p99 < 3 s", fmt.Sprintf("%.0f ms (%d kills)", r.FailoverP99MS, len(r.Failovers)), len(r.Failovers) > 0 && r.FailoverP99MS < 3000)
	add("follower restart-to-serving < 10 s (the slowest restart)", fmt.Sprintf("%.1f s", r.RestartS), r.RestartS > 0 && r.RestartS < 10)
	most := 0.0
	for _, u := range append(append([]Usage(nil), r.IdleFull...), r.Steady...) {
		if u.Role != "sim" {
			most = max(most, u.RSSMB)
		}
	}
	add(fmt.Sprintf("server RSS <= 1 GB with %d functions", r.Deploys.Done), fmt.Sprintf("%.0f MB", most), most <= 1024)
	return out
}

func printTable(w io.Writer, r *Result) {
	c := r.Config
	fmt.Fprintf(w, "scale: %d servers, %d simulated workers (%d processes, %d slots each)\n", c.Servers, c.Workers, c.SimProcs, c.Slots)
	fmt.Fprintf(w, "%d CPUs %s, kernel %s, %s; %s; load before: %s\n", r.Machine.NumCPU, r.Machine.CPU, r.Machine.Kernel, r.Machine.Go, r.Machine.Date, r.Load)
	fmt.Fprintf(w, "%s\n\n", r.Command)
	fmt.Fprintf(w, "workers enrolled and started in %.1f s (slowest process); all seen healthy by every server after %.1f s\n", r.EnrolSeconds, r.WorkersSeenS)
	usage := func(name string, us []Usage) {
		var parts []string
		for _, u := range us {
			parts = append(parts, fmt.Sprintf("%s(%s) %.1f%% %.0f MB", u.Process, u.Role, u.CPUPct, u.RSSMB))
		}
		fmt.Fprintf(w, "%-22s %s\n", name, strings.Join(parts, ", "))
	}
	usage("idle, no functions:", r.IdleEmpty)
	usage("idle, after deploys:", r.IdleFull)
	usage("schedules firing:", r.Steady)
	phase := func(name string, p Phase) {
		stop := ""
		if p.Stopped {
			stop = " (stopped by -duration)"
		}
		fmt.Fprintf(w, "%-22s %d done, %d failed in %.1f s = %.0f/s; p50 %.1f ms p99 %.1f ms%s\n", name, p.Done, p.Failed, p.Seconds, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, stop)
		if p.LastError != "" {
			fmt.Fprintf(w, "%-22s last error: %s\n", "", p.LastError)
		}
	}
	phase("deploys:", r.Deploys)
	phase("schedules put:", r.SchedulesPut)
	phase("invokes:", r.Invokes)
	for i := range r.Heartbeat {
		h, p := r.Heartbeat[i], r.Placement[i]
		fmt.Fprintf(w, "%-22s %s: heartbeat p99 <= %.3f ms (n=%.0f), placement pick p99 <= %.3f ms (n=%.0f)\n", "during invokes:", h.Server, h.P99MS, h.N, p.P99MS, p.N)
	}
	for _, m := range r.Metrics {
		fmt.Fprintf(w, "%-22s %s: %.1f MB in %.1f s\n", "/metrics after:", m.Server, float64(m.Bytes)/1e6, m.Seconds)
	}
	for _, rd := range r.Reads {
		fmt.Fprintf(w, "%-22s GET %s (%d bytes): p50 %.1f ms p99 %.1f ms (n=%d, failed %d)\n", "read:", rd.Path, rd.Bytes, rd.Latency.P50MS, rd.Latency.P99MS, rd.Latency.N, rd.Failed)
	}
	fmt.Fprintf(w, "%-22s %d fires of %d schedules: p50 %.0f ms p90 %.0f ms p99 %.0f ms max %.0f ms; all schedules: %d fires, %d missed\n", "schedule lag, quiet:",
		r.Lag.Fires, r.Lag.Schedules, r.Lag.Lag.P50MS, r.Lag.Lag.P90MS, r.Lag.Lag.P99MS, r.Lag.Lag.MaxMS, r.Lag.FiresAll, r.Lag.Missed)
	drained := fmt.Sprintf("the queue drained %.1f s after the invokes ended, before the quiet window", r.SettleS)
	if r.SettleLeft != 0 {
		drained = fmt.Sprintf("the queue had not drained %.1f s after the invokes ended (%d events left) when the quiet window began", r.SettleS, r.SettleLeft)
	}
	fmt.Fprintf(w, "%-22s %s; %d fires in it over 1 s late, the last for a slot %.1f s into it\n", "", drained, r.Lag.Late, r.Lag.LastLateS)
	fmt.Fprintf(w, "%-22s %d fires: p50 %.0f ms p99 %.0f ms max %.0f ms\n", "schedule lag, loaded:",
		r.LagLoaded.Fires, r.LagLoaded.Lag.P50MS, r.LagLoaded.Lag.P99MS, r.LagLoaded.Lag.MaxMS)
	fmt.Fprintf(w, "%-22s %.1f MB in %.1f s; leader's raft dir %.1f MB %s\n", "snapshot save:", r.Snapshot.MB, r.Snapshot.Seconds, r.Snapshot.RaftDirMB, r.Snapshot.Error)
	for _, rs := range append([]Readiness{r.Restart}, r.MoreRestarts...) {
		ph := rs.Phases
		fmt.Fprintf(w, "%-22s ready after %.1f s (API answering after %.1f s; last not-ready reasons: %s)\n", "follower restart:",
			rs.ReadyS, rs.FirstAnswerS, strings.Join(rs.LastReasons, "; "))
		fmt.Fprintf(w, "%-22s raft state loaded %.2f s (open %.2f s, snapshot of %.1f MB restored in %.2f s, %d log entries after it), serving from its state %.2f s, caught up %.2f s\n",
			"  its log:", ph.RaftLoadedS, ph.RaftOpenS, float64(ph.SnapshotBytes)/1e6, ph.RestoreS, ph.EntriesAfter, ph.StartedS, ph.CaughtUpS)
	}
	fmt.Fprintf(w, "%-22s %v ms\n\n", "failovers:", r.Failovers)
	for _, g := range r.Goals {
		met := "met"
		if !g.Met {
			met = "NOT met"
		}
		fmt.Fprintf(w, "goal: %-62s %-20s %s\n", g.What, g.Value, met)
	}
	for _, n := range r.Notes {
		if n.Warnings+n.Errors > 0 {
			fmt.Fprintf(w, "log %s: %d warnings, %d errors; %s\n", n.Process, n.Warnings, n.Errors, strings.Join(n.Samples, " | "))
		}
	}
}
