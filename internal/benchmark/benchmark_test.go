package benchmark

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTheJSONFormHasExactlyIssue7sKeysAllNumbers(t *testing.T) {
	b, err := json.Marshal(Result{IdleInstancePSSKB: 4096, ThroughputRPS: 6500.5})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"python_startup_p50_ms", "http_rtt_p50_ms", "pipe_rtt_p50_ms",
		"cold_p50_ms", "cold_p99_ms", "warm_p50_ms", "warm_p99_ms",
		"throughput_rps", "idle_instance_pss_kb", "cold_ratio", "warm_ratio",
	}
	var got []string
	for k, v := range m {
		got = append(got, k)
		if _, ok := v.(float64); !ok {
			t.Errorf("%s = %#v, not a number", k, v)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func TestRatiosFollowIssue7sDefinitions(t *testing.T) {
	cases := []struct {
		name            string
		in              Result
		wantCold, wantW float64
	}{
		{
			name:     "cold is divided by python start-up and warm by http plus pipe",
			in:       Result{ColdP50MS: 4, PythonStartupP50MS: 8, WarmP50MS: 0.3, HTTPRTTP50MS: 0.1, PipeRTTP50MS: 0.05},
			wantCold: 0.5, wantW: 2,
		},
		{
			name:     "ratios are rounded to three decimals",
			in:       Result{ColdP50MS: 10, PythonStartupP50MS: 3, WarmP50MS: 1, HTTPRTTP50MS: 2, PipeRTTP50MS: 1},
			wantCold: 3.333, wantW: 0.333,
		},
		{
			name:     "a zero divisor gives zero, not infinity",
			in:       Result{ColdP50MS: 10, WarmP50MS: 1},
			wantCold: 0, wantW: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.in
			r.Ratios()
			if r.ColdRatio != c.wantCold || r.WarmRatio != c.wantW {
				t.Errorf("cold_ratio, warm_ratio = %v, %v; want %v, %v", r.ColdRatio, r.WarmRatio, c.wantCold, c.wantW)
			}
		})
	}
}

func TestPercentilesAreNearestRankInMilliseconds(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentileMS(ds, 50); got != 10 {
		t.Errorf("p50 = %v, want 10", got)
	}
	if got := percentileMS(ds, 99); got != 20 {
		t.Errorf("p99 of 20 samples = %v, want the slowest, 20", got)
	}
	if ds[0] != 20*time.Millisecond {
		t.Error("percentileMS reordered its input")
	}
	if got := percentileMS(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	if got := percentileMS([]time.Duration{1234567 * time.Nanosecond}, 50); got != 1.235 {
		t.Errorf("p50 = %v, want 1.235 (rounded to microseconds)", got)
	}
}

func TestPSSIsReadFromSmapsRollup(t *testing.T) {
	b, err := os.ReadFile("testdata/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := parsePSS(b)
	if err != nil || kb != 3412 {
		t.Errorf("parsePSS = %d, %v; want 3412 (the Pss line, not Pss_Anon or SwapPss)", kb, err)
	}
	for _, bad := range []string{"Rss: 10 kB\n", "Pss: lots kB\n", "Pss: 10 MB\n"} {
		if _, err := parsePSS([]byte(bad)); err == nil {
			t.Errorf("parsePSS(%q) gave no error", bad)
		}
	}
}

func TestStatusGivesTheRealUIDAndParent(t *testing.T) {
	b, err := os.ReadFile("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	uid, ppid, err := parseStatus(b)
	if err != nil || uid != 1000007 || ppid != 4242 {
		t.Errorf("parseStatus = %d, %d, %v; want 1000007, 4242", uid, ppid, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("a status without Uid and PPid gave no error")
	}
}

func TestStartTimeIsCountedFromTheLastParenthesis(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	stat := "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	got, err := parseStartTime([]byte(stat))
	if err != nil || got != 987654 {
		t.Errorf("parseStartTime = %d, %v; want 987654", got, err)
	}
}

func TestDescendsFollowsParentsToTheRoot(t *testing.T) {
	procs := map[int]proc{10: {pid: 10, ppid: 1}, 20: {pid: 20, ppid: 10}, 30: {pid: 30, ppid: 20}, 40: {pid: 40, ppid: 1}}
	if !descends(procs, 30, 10) {
		t.Error("30 -> 20 -> 10 does not descend from 10")
	}
	if descends(procs, 40, 10) {
		t.Error("40 descends from 10")
	}
}

func TestTheTableShowsEveryFigureAndTheGoals(t *testing.T) {
	rep := &Report{Result: Result{ColdP50MS: 4, PythonStartupP50MS: 8, ThroughputRPS: 7000, IdleInstancePSSKB: 6000}, PSSPid: 99}
	rep.Ratios()
	var buf bytes.Buffer
	if err := WriteTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"python_startup_p50_ms", "warm_ratio", "idle_instance_pss_kb", "<= 5000  NOT met", ">= 6000  met", "<= 0.5  met"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// The test binary serves as the HTTP baseline's process when started so,
// as the nimbus binary does (cmd/nimbus).
func TestMain(m *testing.M) {
	if IsHTTPBaseline() {
		HTTPBaselineMain()
	}
	os.Exit(m.Run())
}

func TestTheHTTPBaselineRunsInAProcessOfItsOwnUntilClosed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := startHTTPBaseline(exe)
	if err != nil {
		t.Fatal(err)
	}
	pid := b.cmd.Process.Pid
	if pid == os.Getpid() {
		t.Fatal("the baseline runs in this process")
	}
	c := newAPI(b.url, "", 1)
	for range 3 { // one keep-alive connection, several requests
		status, h, body, err := c.do(t.Context(), "POST", "/", []byte("{}"))
		if err != nil || status != 200 || string(body) != "null" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("the baseline answered %d %q %q, %v; want 200 application/json null", status, h.Get("Content-Type"), body, err)
		}
	}
	c.hc.CloseIdleConnections()
	b.close() // returns once the process has exited
	if !b.cmd.ProcessState.Exited() || b.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("the baseline ended with %v; want exit status 0 when its stdin closes", b.cmd.ProcessState)
	}
	if _, _, _, err := c.do(t.Context(), "POST", "/", []byte("{}")); err == nil {
		t.Error("the baseline still answers after close")
	}
}

func TestTheTableShowsTheInProcessBaselineBeside(t *testing.T) {
	rep := &Report{Result: Result{WarmP50MS: 0.12, HTTPRTTP50MS: 0.08, PipeRTTP50MS: 0.03}, HTTPInProcessP50MS: 0.03}
	rep.Ratios()
	rep.WarmRatioInProcess = ratio(rep.WarmP50MS, rep.HTTPInProcessP50MS+rep.PipeRTTP50MS)
	var buf bytes.Buffer
	if err := WriteTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"warm_ratio              1.091", "it took 0.030 ms, and warm_ratio with it is 2.000"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// cancelOn is a progress writer that cancels a run's context once the
// run prints a line containing marker.
type cancelOn struct {
	marker string
	cancel context.CancelFunc
	mu     sync.Mutex
	seen   strings.Builder
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen.Write(p)
	if strings.Contains(c.seen.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// A run that fails after it started its own nimbus dev (here: the user
// interrupts it during the cold phase) returns its error; it used to
// panic in a deferred assignment to the nil report, hiding the error.
func TestARunThatFailsAfterStartingItsNodeReturnsTheError(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts nimbus dev")
	}
	exe := filepath.Join(t.TempDir(), "nimbus")
	build := exec.Command("go", "build", "-o", exe, "nimbus/cmd/nimbus")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building nimbus: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	progress := &cancelOn{marker: "bench: cold:", cancel: cancel}
	rep, err := Run(ctx, Options{Quick: true, Executable: exe, Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, %v; want the context's cancellation\nprogress:\n%s", rep, err, progress.seen.String())
	}
	if rep != nil {
		t.Errorf("Run returned a report with its error: %+v", rep)
	}
	if !strings.Contains(progress.seen.String(), "stopping nimbus dev") {
		t.Errorf("the run did not stop its nimbus dev:\n%s", progress.seen.String())
	}
}
