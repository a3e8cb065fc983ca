// Package stats owns the arithmetic and the machine description the
// benchmark programs under bench/ share: latency summaries by nearest-rank
// percentiles, and where a run happened.
package stats

import (
	"bufio"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Summary describes a sample of latencies, in milliseconds.
type Summary struct {
	N      int     `json:"n"`
	MinMS  float64 `json:"min_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
	MeanMS float64 `json:"mean_ms"`
}

// Summarize computes a Summary of ds. Percentiles are nearest-rank: the
// p-th percentile is the smallest sample at or above p% of the samples,
// so with fewer than 100 samples p99 is the maximum. It does not modify ds.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Summary{
		N:      len(s),
		MinMS:  MS(s[0]),
		P50MS:  MS(rank(s, 50)),
		P90MS:  MS(rank(s, 90)),
		P99MS:  MS(rank(s, 99)),
		MaxMS:  MS(s[len(s)-1]),
		MeanMS: MS(sum / time.Duration(len(s))),
	}
}

// rank returns the nearest-rank p-th percentile of sorted s.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

// MS converts d to milliseconds, rounded to microseconds.
func MS(d time.Duration) float64 { return Round(float64(d) / float64(time.Millisecond)) }

// Round rounds x to three decimals.
func Round(x float64) float64 { return math.Round(x*1000) / 1000 }

// Ratio returns a/b rounded to three decimals, or 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return Round(a / b)
}

// Machine says where a benchmark ran.
type Machine struct {
	Date   string `json:"date"` // RFC 3339, UTC
	CPU    string `json:"cpu"`  // "model name" of /proc/cpuinfo
	NumCPU int    `json:"nproc"`
	Kernel string `json:"kernel"` // uname -r
	Go     string `json:"go"`
}

// ThisMachine describes the machine running this process.
func ThisMachine() Machine {
	m := Machine{
		Date:   time.Now().UTC().Format(time.RFC3339),
		NumCPU: runtime.NumCPU(),
		Go:     runtime.Version(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}
