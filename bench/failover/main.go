// Command failover measures how long a three-server Nimbus cluster takes
// to recover from losing its Raft leader.
//
// It builds nimbus (unless -bin names a binary) and starts three servers
// on free 127.0.0.1 ports with the flags scripts/cluster-local uses
// (--bootstrap-expect 3, --join, --bootstrap-token-file), and one worker
// (a deploy needs a worker that offers a runtime; it runs nothing). Once
// they agree on a leader it repeats -kills times:
//
//   - kill -9 the leader's process group;
//   - from the kill, poll each survivor's GET /v1/cluster every 10 ms
//     until one names a leader other than the dead server (new_leader),
//     and at the same time send PUT /v1/functions/bench to each survivor
//     as fast as answers come back, each with a 2 s timeout, until one
//     answers 200 or 201 (first_write);
//   - restart the killed server with the same flags and data, and wait
//     until all three answer GET /v1/cluster naming the same leader, see
//     every server and the worker healthy, and the restarted server's
//     last index has reached the leader's (catch_up, from the restart).
//
// It reports p50/p99/max of new_leader and first_write with the Raft
// timeouts in use (the servers' --raft-heartbeat-timeout, which is also
// their election timeout, and raft.DefaultConfig()'s others) against
// issue 4's goal: p99 under 3 s. Nothing asserts it.
//
//	go run ./bench/failover [-kills 20] [-raft-heartbeat-timeout 1s] [-o json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
	"nimbus/internal/controlplane"
)

// goal is issue 4's: p99 of both measures under 3 s with default settings.
const goal = 3 * time.Second

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine stats.Machine `json:"machine"`
	Command string        `json:"command"`
	Kills   int           `json:"kills"`
	Raft    RaftTimeouts  `json:"raft"`
	GoalMS  float64       `json:"goal_p99_under_ms"`

	NewLeaderP50MS  float64 `json:"new_leader_p50_ms"`
	NewLeaderP99MS  float64 `json:"new_leader_p99_ms"`
	NewLeaderMaxMS  float64 `json:"new_leader_max_ms"`
	FirstWriteP50MS float64 `json:"first_write_p50_ms"`
	FirstWriteP99MS float64 `json:"first_write_p99_ms"`
	FirstWriteMaxMS float64 `json:"first_write_max_ms"`
	// GoalMet reports whether both p99s are under the goal.
	GoalMet bool `json:"goal_met"`
	// DeadStillLeader counts the rounds in which a survivor's view named
	// the killed server as leader beside the new one.
	DeadStillLeader int `json:"rounds_dead_still_leader"`

	NewLeader  stats.Summary `json:"new_leader"`
	FirstWrite stats.Summary `json:"first_write"`
	CatchUp    stats.Summary `json:"catch_up"`
	Rounds     []Round       `json:"rounds"`
}

// RaftTimeouts are the servers' Raft timeouts in the run.
type RaftTimeouts struct {
	HeartbeatMS   float64 `json:"heartbeat_timeout_ms"`
	ElectionMS    float64 `json:"election_timeout_ms"`
	LeaderLeaseMS float64 `json:"leader_lease_timeout_ms"`
	CommitMS      float64 `json:"commit_timeout_ms"`
}

// Round is one leader kill, in the order they ran.
type Round struct {
	Killed       string  `json:"killed"`
	NewLeader    string  `json:"new_leader"`
	SeenBy       string  `json:"seen_by"` // the survivor that named it first
	WriteVia     string  `json:"write_via"`
	NewLeaderMS  float64 `json:"new_leader_ms"`
	FirstWriteMS float64 `json:"first_write_ms"`
	// FirstWriteSentMS is when the successful write was sent: a write
	// that waits past the 2 s timeout for a leader fails, so after a
	// long election the success is the retry sent at about 2 s.
	FirstWriteSentMS float64 `json:"first_write_sent_ms"`
	CatchUpMS        float64 `json:"catch_up_ms"`
	// FailedWrites counts the writes that failed before the first
	// success, over both survivors; LastFailure is the last one's answer.
	FailedWrites int    `json:"failed_writes"`
	LastFailure  string `json:"last_failure,omitempty"`
	// DeadStillLeader reports whether a survivor's GET /v1/cluster named
	// the killed server as leader beside a live one in the same answer.
	DeadStillLeader bool `json:"dead_still_leader"`
}

func main() {
	var (
		kills       int
		bin, format string
		keep        bool
		heartbeat   time.Duration
	)
	flag.IntVar(&kills, "kills", 20, "leader kills to measure")
	flag.StringVar(&bin, "bin", "", "nimbus binary to start (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.BoolVar(&keep, "keep", false, "keep the data directory and the servers' logs")
	flag.DurationVar(&heartbeat, "raft-heartbeat-timeout", controlplane.DefaultHeartbeatTimeout, "the servers' --raft-heartbeat-timeout")
	flag.Parse()
	if kills < 1 || (format != "table" && format != "json") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stats.Main("failover", format, func(ctx context.Context) (*Result, error) { return run(ctx, kills, bin, keep, heartbeat) }, printTable)
}

func run(ctx context.Context, kills int, bin string, keep bool, heartbeat time.Duration) (res *Result, err error) {
	rc := raft.DefaultConfig()
	controlplane.SetHeartbeatTimeout(rc, heartbeat)
	res = &Result{
		Machine: stats.ThisMachine(),
		Command: strings.Join(append([]string{"go run ./bench/failover"}, os.Args[1:]...), " "),
		Kills:   kills,
		Raft: RaftTimeouts{
			HeartbeatMS: stats.MS(rc.HeartbeatTimeout), ElectionMS: stats.MS(rc.ElectionTimeout),
			LeaderLeaseMS: stats.MS(rc.LeaderLeaseTimeout), CommitMS: stats.MS(rc.CommitTimeout),
		},
		GoalMS: stats.MS(goal),
	}
	fmt.Fprintln(os.Stderr, "starting three servers and a worker...")
	c, err := cluster.Start(ctx, cluster.Options{Name: "failover", Bin: bin, Keep: keep,
		ServerArgs: []string{"--raft-heartbeat-timeout", heartbeat.String()}})
	if err != nil {
		return nil, err
	}
	defer c.End(&err, nil)
	a, err := newAPI(c.Token)
	if err != nil {
		return nil, err
	}
	b := &bench{c: c, api: a}
	if _, err := b.settle(ctx, nil, 90*time.Second); err != nil {
		return nil, fmt.Errorf("the cluster did not settle after starting: %w", err)
	}
	var newLeader, firstWrite, catchUp []time.Duration
	for k := 0; k < kills; k++ {
		r, nl, fw, cu, err := b.round(ctx)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", k+1, err)
		}
		fmt.Fprintf(os.Stderr, "%2d/%d: killed %s; new leader %s after %.0f ms, first write after %.0f ms (sent at %.0f ms, %d failed); caught up %.0f ms after restart; dead shown as leader too: %v\n",
			k+1, kills, r.Killed, r.NewLeader, r.NewLeaderMS, r.FirstWriteMS, r.FirstWriteSentMS, r.FailedWrites, r.CatchUpMS, r.DeadStillLeader)
		if r.DeadStillLeader {
			res.DeadStillLeader++
		}
		res.Rounds = append(res.Rounds, r)
		newLeader, firstWrite, catchUp = append(newLeader, nl), append(firstWrite, fw), append(catchUp, cu)
	}
	res.NewLeader, res.FirstWrite, res.CatchUp = stats.Summarize(newLeader), stats.Summarize(firstWrite), stats.Summarize(catchUp)
	res.NewLeaderP50MS, res.NewLeaderP99MS, res.NewLeaderMaxMS = res.NewLeader.P50MS, res.NewLeader.P99MS, res.NewLeader.MaxMS
	res.FirstWriteP50MS, res.FirstWriteP99MS, res.FirstWriteMaxMS = res.FirstWrite.P50MS, res.FirstWrite.P99MS, res.FirstWrite.MaxMS
	res.GoalMet = res.NewLeaderP99MS < res.GoalMS && res.FirstWriteP99MS < res.GoalMS
	return res, nil
}

func printTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "failover of a 3-server cluster on 127.0.0.1, %d leader kills (kill -9)\n", res.Kills)
	fmt.Fprintf(w, "%d CPUs %s, kernel %s, %s; %s\n", res.Machine.NumCPU, res.Machine.CPU, res.Machine.Kernel, res.Machine.Go, res.Machine.Date)
	fmt.Fprintf(w, "Raft: HeartbeatTimeout %v ms, ElectionTimeout %v ms, LeaderLeaseTimeout %v ms, CommitTimeout %v ms\n",
		res.Raft.HeartbeatMS, res.Raft.ElectionMS, res.Raft.LeaderLeaseMS, res.Raft.CommitMS)
	fmt.Fprintf(w, "\n  %-44s %9s %9s %9s %9s %9s\n", "ms from the kill", "min", "p50", "p90", "p99", "max")
	row := func(name string, s stats.Summary) {
		fmt.Fprintf(w, "  %-44s %9.1f %9.1f %9.1f %9.1f %9.1f\n", fmt.Sprintf("%s (n=%d)", name, s.N), s.MinMS, s.P50MS, s.P90MS, s.P99MS, s.MaxMS)
	}
	row("survivor names a new leader", res.NewLeader)
	row("first write through a survivor", res.FirstWrite)
	row("catch-up after restart (from restart)", res.CatchUp)
	if res.DeadStillLeader > 0 {
		fmt.Fprintf(w, "\nin %d of %d rounds a survivor's GET /v1/cluster named the dead server as leader beside the new one\n", res.DeadStillLeader, res.Kills)
	}
	met := "met"
	if !res.GoalMet {
		met = "NOT met"
	}
	fmt.Fprintf(w, "\ngoal (issue 4): p99 under %.0f ms: %s (new leader p99 %.1f ms, first write p99 %.1f ms)\n",
		res.GoalMS, met, res.NewLeaderP99MS, res.FirstWriteP99MS)
}
