package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
	"nimbus/pkg/client"
)

// leaderOf asks the server at addr who leads ("" when it does not know).
func leaderOf(ctx context.Context, api *cluster.API, addr string) (string, client.Cluster, error) {
	var cl client.Cluster
	if err := api.GetJSON(ctx, addr, "/v1/cluster", &cl); err != nil {
		return "", cl, err
	}
	ls := cluster.Leaders(cl)
	if len(ls) != 1 {
		return "", cl, nil
	}
	return ls[0], cl, nil
}

// waitWorkers waits until every server agrees on one leader and sees at
// least n healthy workers; it returns the leader's ID.
func waitWorkers(ctx context.Context, api *cluster.API, c *cluster.Cluster, n int, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	why := ""
	for time.Now().Before(deadline) {
		leader, ok := "", true
		for _, s := range c.Servers {
			l, cl, err := leaderOf(ctx, api, s.API)
			healthy := 0
			for _, w := range cl.Workers {
				if w.Healthy {
					healthy++
				}
			}
			switch {
			case err != nil:
				why = err.Error()
			case l == "" || (leader != "" && l != leader):
				why = s.ID + " names no single leader, or another"
			case healthy < n:
				why = fmt.Sprintf("%s sees %d healthy workers of %d", s.ID, healthy, n)
			default:
				leader = l
				continue
			}
			ok = false
			break
		}
		if ok {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("not settled within %v: %s", limit, why)
}

// Read is one API read's client-side latency, through a follower and the
// leader alternately.
type Read struct {
	Path    string        `json:"path"`
	Bytes   int           `json:"bytes"`
	Latency stats.Summary `json:"latency"`
	Failed  int           `json:"failed"`
}

// reads times each read n times, interleaved so that they share the
// machine's noise.
func reads(ctx context.Context, api *cluster.API, addrs []string, paths []string, n int) []Read {
	lat := make([][]time.Duration, len(paths))
	out := make([]Read, len(paths))
	for k := range n {
		for i, p := range paths {
			s := time.Now()
			st, b, err := api.Do(ctx, http.MethodGet, addrs[k%len(addrs)], p, nil, nil)
			d := time.Since(s)
			if err != nil || st != http.StatusOK {
				out[i].Failed++
				continue
			}
			lat[i] = append(lat[i], d)
			out[i].Bytes = len(b)
		}
	}
	for i, p := range paths {
		out[i].Path, out[i].Latency = p, stats.Summarize(lat[i])
	}
	return out
}

// Lag is the schedule lag read from the fires' records.
type Lag struct {
	Schedules int           `json:"schedules_sampled"`
	Fires     int           `json:"fires_seen"`
	Lag       stats.Summary `json:"lag"` // record start - slot
	Missed    int64         `json:"missed_total"`
	FiresAll  int64         `json:"fires_total"`
	// Late counts the fires over 1 s late, and LastLateS is how far into
	// the window the slot of the last of them was: a backlog draining at
	// the window's start, or lateness throughout.
	Late      int     `json:"late_over_1s"`
	LastLateS float64 `json:"last_late_slot_s"`
}

// scheduleLag reads the records of sample schedules' functions (function
// i for schedule i) and takes, for each fire (request id
// sched-<name>-<unix slot>), its start minus its slot: steady are the
// fires whose slot is within [from, to), loaded the others.
func scheduleLag(ctx context.Context, api *cluster.API, addr string, schedules, sample int, from, to time.Time) (loaded, steady Lag) {
	var lagsL, lagsS []time.Duration
	step := max(schedules/max(sample, 1), 1)
	for i := 0; i < schedules; i += step {
		recs, err := invocationsOf(ctx, api, addr, fnName(i))
		if err != nil {
			continue
		}
		loaded.Schedules++
		steady.Schedules++
		for _, r := range recs {
			rest, ok := strings.CutPrefix(r.ID, "sched-"+schedName(i)+"-")
			if !ok {
				continue
			}
			sec, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				continue
			}
			slot := time.Unix(sec, 0)
			if !slot.Before(from) && slot.Before(to) {
				steady.Fires++
				lagsS = append(lagsS, r.Start.Sub(slot))
				if r.Start.Sub(slot) > time.Second {
					steady.Late++
					steady.LastLateS = max(steady.LastLateS, slot.Sub(from).Seconds())
				}
			} else {
				loaded.Fires++
				lagsL = append(lagsL, r.Start.Sub(slot))
			}
		}
	}
	loaded.Lag, steady.Lag = stats.Summarize(lagsL), stats.Summarize(lagsS)
	if all, err := api.Schedules(ctx, addr); err == nil {
		for _, s := range all {
			steady.Missed += s.Missed
			steady.FiresAll += s.Fires
		}
	}
	loaded.Missed, loaded.FiresAll = steady.Missed, steady.FiresAll
	return loaded, steady
}

func invocationsOf(ctx context.Context, api *cluster.API, addr, fn string) ([]client.Invocation, error) {
	var out struct {
		Invocations []client.Invocation `json:"invocations"`
	}
	err := api.GetJSON(ctx, addr, "/v1/invocations?limit=100&function="+fn, &out)
	return out.Invocations, err
}

// Snapshot is `nimbus operator snapshot save` against the leader.
type Snapshot struct {
	Seconds float64 `json:"seconds"`
	MB      float64 `json:"mb"`
	Error   string  `json:"error,omitempty"`
	// RaftDirMB is the size of the leader's DATA/raft afterwards (its
	// own snapshot and its log).
	RaftDirMB float64 `json:"raft_dir_mb"`
}

func saveSnapshot(ctx context.Context, c *cluster.Cluster, leader *cluster.Proc) Snapshot {
	file := filepath.Join(c.Dir, "backup.snap")
	cmd := exec.CommandContext(ctx, c.Bin, "operator", "snapshot", "save", file, "--url", "http://"+leader.API)
	cmd.Env = append(os.Environ(), "NIMBUS_TOKEN="+c.Token)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	s := Snapshot{Seconds: stats.Round(time.Since(t0).Seconds())}
	if err != nil {
		s.Error = fmt.Sprintf("%v: %s", err, cluster.Short(out))
	}
	if fi, err := os.Stat(file); err == nil {
		s.MB = stats.Round(float64(fi.Size()) / 1e6)
		os.Remove(file)
	}
	s.RaftDirMB = stats.Round(float64(dirSize(filepath.Join(c.Dir, leader.ID, "raft"))) / 1e6)
	return s
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Readiness is how a restarted server came back: when its API first
// answered at all (/readyz with any status), when it was ready, and the
// reasons its last answer before that gave; then the phases its log gave
// (seconds from the server's own start, so a little under the others).
type Readiness struct {
	FirstAnswerS float64  `json:"first_answer_s"`
	ReadyS       float64  `json:"ready_s"`
	LastReasons  []string `json:"last_reasons,omitempty"`
	Phases       Phases   `json:"phases"`
}

// Phases are a server's start-up as its log tells it: the Raft state
// loaded (raft.db and the snapshot store opened, the snapshot restored
// into the state store, the log after it read), the server started
// (serving from its state), and caught up with the cluster.
type Phases struct {
	RaftLoadedS   float64 `json:"raft_loaded_s"`
	RaftOpenS     float64 `json:"raft_open_s"`
	RestoreS      float64 `json:"snapshot_restore_s"`
	SnapshotBytes int64   `json:"snapshot_bytes"`
	EntriesAfter  int64   `json:"log_entries_after_snapshot"`
	StartedS      float64 `json:"started_s"`
	CaughtUpS     float64 `json:"caught_up_s"`
}

// phasesOf reads the phases from a server's log lines (log/slog's text
// form), from the start of the last start-up in them.
func phasesOf(log string) Phases {
	var ph Phases
	if i := strings.LastIndex(log, `msg="raft state loaded"`); i >= 0 {
		line, _, _ := strings.Cut(log[i:], "\n")
		ph.RaftLoadedS, ph.RaftOpenS, ph.RestoreS = logSeconds(line, "took"), logSeconds(line, "open"), logSeconds(line, "restore")
		ph.SnapshotBytes = logInt(line, "snapshot_bytes")
		ph.EntriesAfter = max(logInt(line, "last_index")-logInt(line, "snapshot_index"), 0)
		log = log[i:]
	}
	if i := strings.Index(log, `msg="nimbus server started"`); i >= 0 {
		line, _, _ := strings.Cut(log[i:], "\n")
		ph.StartedS = logSeconds(line, "took")
	}
	if i := strings.Index(log, `msg="caught up with the cluster"`); i >= 0 {
		line, _, _ := strings.Cut(log[i:], "\n")
		ph.CaughtUpS = logSeconds(line, "after_start")
	}
	return ph
}

// logField is the value of key=value in a log line, "" if absent.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v, _, _ := strings.Cut(line[i+len(key)+2:], " ")
	return v
}

func logSeconds(line, key string) float64 {
	d, err := time.ParseDuration(logField(line, key))
	if err != nil {
		return 0
	}
	return stats.Round(d.Seconds())
}

func logInt(line, key string) int64 {
	n, _ := strconv.ParseInt(logField(line, key), 10, 64)
	return n
}

// ready polls addr's /readyz every 20 ms from t0 until it answers 200.
func ready(ctx context.Context, api *cluster.API, addr string, t0 time.Time, limit time.Duration) (Readiness, error) {
	var r Readiness
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, body, err := api.Do(rctx, http.MethodGet, addr, "/readyz", nil, nil)
		cancel()
		if err == nil && r.FirstAnswerS == 0 {
			r.FirstAnswerS = stats.Round(time.Since(t0).Seconds())
		}
		if err == nil && st == http.StatusOK {
			r.ReadyS = stats.Round(time.Since(t0).Seconds())
			return r, nil
		}
		if err == nil {
			var why struct {
				Reasons []string `json:"reasons"`
			}
			if json.Unmarshal(body, &why) == nil {
				r.LastReasons = why.Reasons
			}
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return r, fmt.Errorf("%s not ready within %v (last reasons: %v)", addr, limit, r.LastReasons)
}

// restart kills p (kill -9), starts it again on the same data and times
// until its /readyz answers 200.
func restart(ctx context.Context, api *cluster.API, p *cluster.Proc) (Readiness, error) {
	if err := p.Kill(); err != nil {
		return Readiness{}, err
	}
	if err := p.Reaped(); err != nil {
		return Readiness{}, err
	}
	logged := int64(0)
	if fi, err := os.Stat(p.Log); err == nil {
		logged = fi.Size()
	}
	t0 := time.Now()
	if err := p.Start(); err != nil {
		return Readiness{}, err
	}
	r, err := ready(ctx, api, p.API, t0, 5*time.Minute)
	if err != nil {
		return r, err
	}
	// The catch-up is logged once the check that saw it returns: a
	// moment after /readyz said so.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(p.Log); err == nil && int64(len(b)) > logged {
			r.Phases = phasesOf(string(b[logged:]))
		}
		if r.Phases.CaughtUpS > 0 || time.Now().After(deadline) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// failover kills the leader and times until a survivor accepts a write
// (a deploy of function 0 again: each survivor is sent one after another,
// 2 s timeout each, as bench/failover does), then restarts the dead one
// and waits until it is ready again.
func failover(ctx context.Context, api *cluster.API, c *cluster.Cluster, leader *cluster.Proc, code string) (time.Duration, string, error) {
	if err := leader.Kill(); err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var (
		once sync.Once
		took time.Duration
		via  string
		wg   sync.WaitGroup
	)
	for _, s := range c.Servers {
		if s == leader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(wctx, 2*time.Second)
				err := deploy(rctx, api, s.API, code, 0)
				rcancel()
				if err == nil {
					once.Do(func() { took, via = time.Since(t0), s.ID; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if took == 0 {
		return 0, "", fmt.Errorf("no survivor accepted a write within 60s of killing %s", leader.ID)
	}
	if err := leader.Reaped(); err != nil {
		return took, via, err
	}
	t1 := time.Now()
	if err := leader.Start(); err != nil {
		return took, via, err
	}
	_, err := ready(ctx, api, leader.API, t1, 5*time.Minute)
	return took, via, err
}

// profileCPU starts taking the CPU profile of server id over d (at most
// 45 s: the API client waits 60) into dir/ID-cpu.pprof, when dir is set;
// the function it returns waits until it is written.
func profileCPU(ctx context.Context, api *cluster.API, c *cluster.Cluster, id, dir string, d time.Duration) (wait func()) {
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range c.Servers {
			if s.ID == id {
				secs := int(min(d, 45*time.Second).Seconds())
				saveProfile(ctx, api, s, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), filepath.Join(dir, id+"-cpu.pprof"))
			}
		}
	}()
	return func() { <-done }
}

// profileHeaps writes every live server's heap profile into
// dir/ID-heap.pprof, when dir is set.
func profileHeaps(ctx context.Context, api *cluster.API, c *cluster.Cluster, dir string) {
	if dir == "" {
		return
	}
	for _, s := range c.Servers {
		if s.Alive() {
			saveProfile(ctx, api, s, "/debug/pprof/heap", filepath.Join(dir, s.ID+"-heap.pprof"))
		}
	}
}

func saveProfile(ctx context.Context, api *cluster.API, s *cluster.Proc, path, file string) {
	status, body, err := api.Do(ctx, http.MethodGet, s.API, path, nil, nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%d %s", status, cluster.Short(body))
	}
	if err == nil {
		err = os.WriteFile(file, body, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "profile %s of %s: %v\n", path, s.ID, err)
	}
}

// settle waits until GET /v1/scaling reports no queued event that no
// worker has (every 200 ms, through the first server that answers), at
// most limit, and returns how long that took and how many events were
// left (-1: no server answered).
func settle(ctx context.Context, api *cluster.API, c *cluster.Cluster, limit time.Duration) (time.Duration, int) {
	t0 := time.Now()
	left := -1
	for time.Since(t0) < limit && ctx.Err() == nil {
		for _, s := range c.Servers {
			var sc client.Scaling
			if api.GetJSON(ctx, s.API, "/v1/scaling", &sc) == nil {
				if left = sc.Load.QueueDepth; left == 0 {
					return time.Since(t0), 0
				}
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return time.Since(t0), left
}
