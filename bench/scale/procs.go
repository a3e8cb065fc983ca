package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux this runs on).
const clockTicks = 100

// cpuTicks is utime + stime of pid, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command (field 2) may hold spaces: count from its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ut + st, nil
}

// rssMB is VmRSS of pid, in MB.
func rssMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return stats.Round(kb / 1024)
		}
	}
	return 0
}

// Usage is one process's CPU over a window and its RSS at the end.
type Usage struct {
	Process string  `json:"process"`
	Role    string  `json:"role"` // leader, follower, sim
	CPUPct  float64 `json:"cpu_pct_of_one_core"`
	RSSMB   float64 `json:"rss_mb"`
}

// usage measures every server's and sim process's CPU over window.
func usage(ctx context.Context, c *cluster.Cluster, leaderID string, window time.Duration) ([]Usage, error) {
	procs := append(append([]*cluster.Proc(nil), c.Servers...), c.Others...)
	before := make([]int64, len(procs))
	for i, p := range procs {
		before[i], _ = cpuTicks(p.Pid())
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(window):
	}
	el := time.Since(t0).Seconds()
	var out []Usage
	for i, p := range procs {
		after, _ := cpuTicks(p.Pid())
		role := "sim"
		if p.API != "" {
			role = "follower"
			if p.ID == leaderID {
				role = "leader"
			}
		}
		out = append(out, Usage{Process: p.ID, Role: role,
			CPUPct: stats.Round(float64(after-before[i]) / clockTicks / el * 100), RSSMB: rssMB(p.Pid())})
	}
	return out, nil
}

// histogram is one Prometheus histogram read from /metrics: cumulative
// counts by upper bound, in seconds.
type histogram struct {
	bounds []float64
	counts []float64
}

// Scrape is one read of a server's /metrics: how long it took and how
// big it was (every function that ran has series of its own).
type Scrape struct {
	Server  string  `json:"server"`
	Seconds float64 `json:"seconds"`
	Bytes   int     `json:"bytes"`
}

// scrapeHistograms reads the histograms names from the server's /metrics
// in one request.
func scrapeHistograms(ctx context.Context, api *cluster.API, addr string, names ...string) (map[string]histogram, Scrape, error) {
	t0 := time.Now()
	status, body, err := api.Do(ctx, http.MethodGet, addr, "/metrics", nil, nil)
	sc := Scrape{Seconds: stats.Round(time.Since(t0).Seconds()), Bytes: len(body)}
	if err != nil {
		return nil, sc, err
	}
	if status != http.StatusOK {
		return nil, sc, fmt.Errorf("/metrics on %s: %d", addr, status)
	}
	out := map[string]histogram{}
	for _, line := range strings.Split(string(body), "\n") {
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
			if !ok {
				continue
			}
			le, val, ok := strings.Cut(rest, `"} `)
			if !ok {
				continue
			}
			b := math.Inf(1)
			if le != "+Inf" {
				b, _ = strconv.ParseFloat(le, 64)
			}
			n, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
			h := out[name]
			h.bounds, h.counts = append(h.bounds, b), append(h.counts, n)
			out[name] = h
		}
	}
	return out, sc, nil
}

// sub is h minus an earlier scrape of the same histogram.
func (h histogram) sub(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: append([]float64(nil), h.counts...)}
	if len(o.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// HistQuantile is a quantile read from a histogram: the upper bound of
// the bucket that holds it (an upper bound of the true value).
type HistQuantile struct {
	Server string  `json:"server"`
	N      float64 `json:"n"`
	P50MS  boundMS `json:"p50_le_ms"`
	P99MS  boundMS `json:"p99_le_ms"`
}

// boundMS is a bucket's upper bound in milliseconds; the last bucket's is
// +Inf, which JSON has no number for: it is written as the string "+Inf"
// (encoding/json refuses the whole result otherwise).
type boundMS float64

func (b boundMS) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(b), 1) {
		return []byte(`"+Inf"`), nil
	}
	return json.Marshal(float64(b))
}

func (h histogram) quantile(q float64) boundMS {
	if len(h.counts) == 0 {
		return 0
	}
	total := h.counts[len(h.counts)-1]
	for i, c := range h.counts {
		if c >= q*total {
			if math.IsInf(h.bounds[i], 1) {
				return boundMS(math.Inf(1))
			}
			return boundMS(stats.Round(h.bounds[i] * 1000))
		}
	}
	return 0
}

func (h histogram) summary(server string) HistQuantile {
	n := 0.0
	if len(h.counts) > 0 {
		n = h.counts[len(h.counts)-1]
	}
	return HistQuantile{Server: server, N: n, P50MS: h.quantile(.5), P99MS: h.quantile(.99)}
}
