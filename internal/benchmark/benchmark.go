// Package benchmark owns `nimbus bench`: one run that measures a Nimbus
// API end to end against the baselines of the same machine (issue 7) and
// reports the figures as one flat Result.
//
// A run measures, in this order: bare `python -I -S -c pass` interleaved
// with the first invoke of freshly deployed no-op functions (cold); a bare
// HTTP round trip to a trivial Go handler in a process of its own and a
// line round trip over a pipe to a bare Python echo loop, interleaved with
// sequential invokes of one warm no-op function (warm); the proportional
// set size of that idle warm instance; the warm invokes of a custom
// runtime's function (a `runtime: provided` bootstrap the run builds) in
// rounds with the no-op function (compat.go); streamed results and
// interactive runs (stream.go, runs.go); the no-op function's throughput
// at concurrency 32, then the same through the Lambda API's Invoke,
// SigV4-signed (compat.go); with Options.URLs, that function's
// throughput through a function URL against the invoke route (urls.go).
// The interpreter of every Python baseline is the one the no-op functions
// run on: the server's default (newest) runtime, resolved by
// python.Discover and python.Pick to the real binary, never a shim.
//
// Usage:
//
//	res, err := benchmark.Run(ctx, benchmark.Options{Quick: true, Executable: exe, Progress: os.Stderr})
//	json.NewEncoder(os.Stdout).Encode(res) // exactly the keys of issue 7
//
// Run sends traffic only to the server it is given or the `nimbus dev` it
// starts on 127.0.0.1, and stops and removes everything it started. Nothing
// in this package asserts a time; it reports.
package benchmark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"sort"
	"time"

	"nimbus/internal/runtime/python"
	"nimbus/pkg/client"
)

// Result is the JSON form of a run (`nimbus bench -o json`): exactly the
// keys issue 7 names, all numbers. Times are milliseconds (p50/p99 are
// nearest-rank), throughput is successful invocations per second, memory
// is kilobytes.
type Result struct {
	PythonStartupP50MS float64 `json:"python_startup_p50_ms"`
	HTTPRTTP50MS       float64 `json:"http_rtt_p50_ms"`
	PipeRTTP50MS       float64 `json:"pipe_rtt_p50_ms"`
	ColdP50MS          float64 `json:"cold_p50_ms"`
	ColdP99MS          float64 `json:"cold_p99_ms"`
	WarmP50MS          float64 `json:"warm_p50_ms"`
	WarmP99MS          float64 `json:"warm_p99_ms"`
	ThroughputRPS      float64 `json:"throughput_rps"`
	IdleInstancePSSKB  int64   `json:"idle_instance_pss_kb"`
	ColdRatio          float64 `json:"cold_ratio"`
	WarmRatio          float64 `json:"warm_ratio"`
	// *URLResult adds issue 18's keys, only with Options.URLs.
	*URLResult
	// *DepsResult adds issue 17's, only when the run starts its node.
	*DepsResult
	// *StreamResult and *RunResult add issue 20's.
	*StreamResult
	*RunResult
	// *LambdaResult and *CustomResult add issue 21's (compat.go), each
	// absent when it could not be measured.
	*LambdaResult
	*CustomResult
}

// Ratios sets ColdRatio = ColdP50MS / PythonStartupP50MS and WarmRatio =
// WarmP50MS / (HTTPRTTP50MS + PipeRTTP50MS), each rounded to three
// decimals, or 0 when its divisor is 0.
func (r *Result) Ratios() {
	r.ColdRatio = ratio(r.ColdP50MS, r.PythonStartupP50MS)
	r.WarmRatio = ratio(r.WarmP50MS, r.HTTPRTTP50MS+r.PipeRTTP50MS)
	if d := r.DepsResult; d != nil {
		d.ColdHeavyRatio = ratio(d.ColdHeavyP50MS, d.PythonHeavyImportP50MS)
		d.ColdBurstRatio = ratio(d.ColdBurstP99MS, r.PythonStartupP50MS)
	}
	if s := r.StreamResult; s != nil {
		s.StreamTTFBRatio = ratio(s.StreamTTFBP50MS, s.StreamWholeP50MS)
	}
	if u := r.RunResult; u != nil {
		u.RunFirstByteRatio = ratio(u.RunFirstByteP50MS, r.ColdP50MS)
		u.RunEchoRatio = ratio(u.RunEchoP50MS, r.WarmP50MS)
	}
	if l := r.LambdaResult; l != nil {
		l.LambdaThroughputRatio = ratio(l.LambdaThroughputRPS, r.ThroughputRPS)
	}
	if c := r.CustomResult; c != nil {
		c.CustomWarmRatio = ratio(c.CustomWarmP50MS, r.WarmP50MS)
	}
}

// Goals are issue 7's targets for a Result.
var Goals = struct {
	ColdRatio, WarmRatio, ThroughputRPS float64
	PSSKB                               int64
}{ColdRatio: 0.5, WarmRatio: 2, ThroughputRPS: 6000, PSSKB: 5000}

// Options configure a run. The zero value is a full run that starts its
// own `nimbus dev` from Executable.
type Options struct {
	// Quick is the short run: 10 cold functions, 200 warm invokes, 3 s of
	// throughput (instead of 20, 500 and 10 s).
	Quick bool
	// URL and Token name the server to measure; with URL empty, Run
	// starts `Executable dev --data <tmp> --listen 127.0.0.1:0` and stops
	// it (SIGINT) and removes its data when done.
	URL, Token string
	// Executable is the nimbus binary: the dev node above, and always the
	// HTTP baseline's server (HTTPBaselineMain).
	Executable string
	// Progress receives one line per phase; nil discards them.
	Progress io.Writer
	// URLs adds the function URL phase (URLResult) after the throughput
	// phase.
	URLs bool
}

// warmupTime is the least time the warm phase's unmeasured rounds take.
const warmupTime = 500 * time.Millisecond

// throughputRamp is the unmeasured load before the throughput phase.
const throughputRamp = time.Second

// sizes are the sample counts of a run.
type sizes struct {
	cold, warm, warmup, clients, heavy int
	throughput                         time.Duration
}

func (o Options) sizes() sizes {
	if o.Quick {
		return sizes{cold: 10, warm: 200, warmup: 10, clients: 32, heavy: 5, throughput: 3 * time.Second}
	}
	return sizes{cold: 20, warm: 500, warmup: 20, clients: 32, heavy: 10, throughput: 10 * time.Second}
}

// Report is a Result with what a person needs to read it.
type Report struct {
	Result
	Target      string // "own nimbus dev on 127.0.0.1" or the URL
	Executor    string // the worker's executor, when the run started the node
	Runtime     string // the runtime the no-op functions ran on
	Interpreter string // its resolved binary, used by the Python baselines
	Cold, Warm  int    // sample counts
	NotCold     int    // "cold" invokes the platform did not mark as cold starts
	Throughput  time.Duration
	Clients     int
	Served      int64 // 200 answers during the throughput phase
	Refused     int64 // 429 answers during the throughput phase
	Failed      int64 // other answers and transport errors
	PSSPid      int   // the instance process whose PSS was read (0: none found)
	// HTTPInProcessP50MS is the HTTP round trip to the trivial handler
	// served inside this process, the baseline of runs before 2026-11-23
	// (newTrivialServer); WarmRatioInProcess is warm_ratio with it.
	HTTPInProcessP50MS, WarmRatioInProcess float64
	// The Lambda API's throughput phase (compat.go): its answers as
	// Served, Refused and Failed count the native one's, or why it did
	// not run.
	LambdaServed, LambdaRefused, LambdaFailed int64
	LambdaSkipped                             string
	// The custom runtime's warm phase: what its bootstrap is, the no-op
	// Python function's p50 in the same rounds, or why it did not run.
	CustomBootstrap         string
	CustomBesidePythonP50MS float64
	CustomSkipped           string
}

// Run performs one benchmark run.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }
	sz := o.sizes()
	rep = &Report{Target: o.URL, Cold: sz.cold, Warm: sz.warm, Throughput: sz.throughput, Clients: sz.clients}
	base, token := o.URL, o.Token
	root := 0 // the process whose descendants are instances; 0: any
	if o.Executable == "" {
		return nil, errors.New("benchmark: no nimbus executable to start the HTTP baseline (and nimbus dev) with")
	}
	logf("custom runtime: building its bootstrap...")
	boot := buildBootstrap(ctx)
	if boot.skip != "" {
		logf("warning: custom_warm_p50_ms will be skipped: %s", boot.skip)
	}
	heavySrc := ""
	if base == "" {
		rep.Target = "own nimbus dev on 127.0.0.1"
		links, src, remove, err := heavyIndex()
		if err != nil {
			return nil, err
		}
		defer remove()
		heavySrc = src
		logf("starting nimbus dev...")
		node, err := startDev(ctx, o.Executable, "--pip-find-links", links, "--pip-no-index")
		if err != nil {
			return nil, err
		}
		defer func() {
			logf("stopping nimbus dev...")
			err = errors.Join(err, node.stop())
		}()
		base, token = node.URL, node.Token
		root = node.Cmd.Process.Pid
		// On an error rep is nil (the return sets it): the error is what
		// the caller gets then, with no report to name the executor in.
		defer func() {
			if rep != nil {
				rep.Executor = node.Executor()
			}
		}()
	}
	a := newAPI(base, token, sz.clients)
	defer a.hc.CloseIdleConnections()
	prefix := "bench-" + randomHex(3)
	var deployed []string
	if o.URL != "" {
		// Leave nothing behind on a server this run did not start.
		defer func() {
			for _, f := range deployed {
				if err := a.remove(context.WithoutCancel(ctx), f); err != nil {
					logf("warning: %v", err)
				}
			}
		}()
	}

	// The no-op function names no runtime, so it gets the default one.
	warmName := prefix + "-noop"
	fn, err := a.deploy(ctx, warmName)
	if err != nil {
		return nil, err
	}
	deployed = append(deployed, warmName)
	local, err := python.Discover()
	if err != nil {
		return nil, err
	}
	rt, err := python.Pick(local, fn.Runtime)
	if err != nil {
		return nil, fmt.Errorf("benchmark: the baselines need %s on this machine: %w", fn.Runtime, err)
	}
	rep.Runtime, rep.Interpreter = fn.Runtime, rt.Executable

	logf("cold: %d functions on %s (%s), beside bare python -I -S -c pass...", sz.cold, rt.Name, rt.Executable)
	if err := runCold(ctx, a, rep, sz, prefix, &deployed); err != nil {
		return nil, err
	}
	logf("warm: %d sequential invokes, beside HTTP and pipe round trips...", sz.warm)
	if err := runWarm(ctx, a, rep, sz, warmName, o.Executable); err != nil {
		return nil, err
	}
	inst, pss, err := idleInstancePSS(root)
	if err != nil {
		logf("warning: idle instance PSS: %v", err)
	} else {
		logf("idle instance: pid %d, uid %d, %.80s: Pss %d kB", inst.pid, inst.uid, inst.cmdline, pss)
		rep.PSSPid, rep.IdleInstancePSSKB = inst.pid, pss
	}
	if boot.skip == "" {
		logf("custom runtime: %d sequential invokes of a provided function (%s), in rounds with the no-op function...", sz.warm, boot.kind)
	}
	if err := runCustomWarm(ctx, a, rep, sz, boot, prefix, warmName, &deployed); err != nil {
		return nil, err
	}
	if rep.CustomSkipped != "" {
		logf("warning: custom_warm_p50_ms skipped: %s", rep.CustomSkipped)
	}
	logf("streaming: time to the first byte of a streamed result, beside the whole answer...")
	if err := runStream(ctx, a, rep, sz, prefix, &deployed); err != nil {
		return nil, err
	}
	logf("runs: %d runs to their first byte, %d echo round trips, %d MB of output...", max(sz.cold, 10), sz.warm, runFlood>>20)
	if err := runRuns(ctx, client.New(base, token), rep, sz); err != nil {
		return nil, err
	}
	logf("throughput: %d clients for %s...", sz.clients, sz.throughput)
	if err := runThroughput(ctx, a, rep, sz, warmName); err != nil {
		return nil, err
	}
	logf("Lambda API: %d clients for %s, every Invoke signed with SigV4...", sz.clients, sz.throughput)
	if err := runLambdaThroughput(ctx, a, rep, sz, warmName); err != nil {
		return nil, err
	}
	if rep.LambdaSkipped != "" {
		logf("warning: lambda_throughput_rps skipped: %s", rep.LambdaSkipped)
	}
	if o.URLs {
		rounds, each := sz.urlRounds()
		logf("function URL: %d clients, %d rounds of %s each through the URL and the invoke route...", sz.clients, rounds, each)
		if err := runURLs(ctx, a, rep, sz, fn.Namespace, warmName); err != nil {
			return nil, err
		}
	}
	if heavySrc != "" {
		logf("burst: %d new functions invoked at once...", burstSize)
		if err := runBurst(ctx, a, rep, prefix, &deployed); err != nil {
			return nil, err
		}
		logf("heavy: %d functions importing %s (%d modules and %d of the standard library), beside bare python -I -S importing it...",
			sz.heavy, heavyPackage, heavyModules, len(heavyStdlib))
		if err := runHeavy(ctx, a, rep, sz, prefix, heavySrc, &deployed); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Ratios()
	rep.WarmRatioInProcess = ratio(rep.WarmP50MS, rep.HTTPInProcessP50MS+rep.PipeRTTP50MS)
	return rep, nil
}

// runCold deploys sz.cold functions, then invokes each once; before each
// invoke it starts bare Python enough times to gather at least 50 samples.
func runCold(ctx context.Context, a *api, rep *Report, sz sizes, prefix string, deployed *[]string) error {
	names := make([]string, sz.cold)
	for i := range names {
		names[i] = fmt.Sprintf("%s-c%d", prefix, i)
		if _, err := a.deploy(ctx, names[i]); err != nil {
			return err
		}
		*deployed = append(*deployed, names[i])
	}
	perInvoke := (50 + sz.cold - 1) / sz.cold
	for range 5 {
		if _, err := pythonStart(rep.Interpreter); err != nil {
			return err
		}
	}
	cold, py, err := coldBesideBaseline(ctx, a, rep, names, perInvoke, func() (time.Duration, error) { return pythonStart(rep.Interpreter) })
	if err != nil {
		return err
	}
	rep.ColdP50MS, rep.ColdP99MS = percentileMS(cold, 50), percentileMS(cold, 99)
	rep.PythonStartupP50MS = percentileMS(py, 50)
	return nil
}

// coldBesideBaseline invokes each function of names once (their first
// invocation: a cold start), each after per samples of baseline, and
// returns both series; an invoke the platform did not mark cold counts
// in rep.NotCold.
func coldBesideBaseline(ctx context.Context, a *api, rep *Report, names []string, per int,
	baseline func() (time.Duration, error)) (cold, base []time.Duration, err error) {
	for _, name := range names {
		for range per {
			d, err := baseline()
			if err != nil {
				return nil, nil, err
			}
			base = append(base, d)
		}
		d, wasCold, err := a.invoke(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if !wasCold {
			rep.NotCold++
		}
		cold = append(cold, d)
	}
	return cold, base, nil
}

// runWarm starts name's instance, then runs unmeasured rounds (at least
// sz.warmup, and for at least warmupTime) and sz.warm measured rounds of:
// an HTTP round trip to the trivial Go server in its own process (exe)
// and one to the same handler inside this process, a pipe round trip to
// the Python echo loop, and an invoke of name.
func runWarm(ctx context.Context, a *api, rep *Report, sz sizes, name, exe string) error {
	echo, err := startPipeEcho(rep.Interpreter)
	if err != nil {
		return err
	}
	defer echo.close()
	server, err := startHTTPBaseline(exe)
	if err != nil {
		return err
	}
	defer server.close()
	bare := newAPI(server.url, "", 1)
	defer bare.hc.CloseIdleConnections()
	inProcess := newTrivialServer()
	defer inProcess.Close()
	bareIn := newAPI(inProcess.URL, "", 1)
	defer bareIn.hc.CloseIdleConnections()
	if _, _, err := a.invoke(ctx, name); err != nil {
		return err
	}
	trivialRTT := func(c *api) (time.Duration, error) {
		t0 := time.Now()
		status, _, body, err := c.do(ctx, http.MethodPost, "/", []byte("{}"))
		d := time.Since(t0)
		if err == nil && (status != http.StatusOK || string(body) != "null") {
			err = fmt.Errorf("benchmark: trivial server: %d %s", status, body)
		}
		return d, err
	}
	round := func() (h, hIn, p, w time.Duration, err error) {
		if h, err = trivialRTT(bare); err != nil {
			return
		}
		if hIn, err = trivialRTT(bareIn); err != nil {
			return
		}
		if p, err = echo.roundTrip(); err != nil {
			err = fmt.Errorf("benchmark: pipe echo: %w", err)
			return
		}
		w, _, err = a.invoke(ctx, name)
		return
	}
	// The warm-up lasts long enough for what the cold phase and this
	// function's first invoke set going to end (the worker refilling its
	// pre-started sandboxes: each a Python start-up, tens of
	// milliseconds of CPU), so that the rounds measure the warm path
	// alone.
	for i, t0 := 0, time.Now(); i < sz.warmup || time.Since(t0) < warmupTime; i++ {
		if _, _, _, _, err := round(); err != nil {
			return err
		}
	}
	// The sequential rounds allocate a few megabytes in this process:
	// its collector stays off meanwhile, so that its pauses and mark
	// workers (a millisecond of both cores now and then) do not land in
	// the round trips measured, the baselines' or the server's.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var warm, rtt, rttIn, pipe []time.Duration
	for range sz.warm {
		h, hIn, p, w, err := round()
		if err != nil {
			return err
		}
		warm, rtt, rttIn, pipe = append(warm, w), append(rtt, h), append(rttIn, hIn), append(pipe, p)
	}
	rep.WarmP50MS, rep.WarmP99MS = percentileMS(warm, 50), percentileMS(warm, 99)
	rep.HTTPRTTP50MS = percentileMS(rtt, 50)
	rep.HTTPInProcessP50MS = percentileMS(rttIn, 50)
	rep.PipeRTTP50MS = percentileMS(pipe, 50)
	return nil
}

// runThroughput has sz.clients connections of the load generator (load)
// invoke name one request at a time each for sz.throughput, and sets
// ThroughputRPS to the 200 answers per second. A 429 is not served.
func runThroughput(ctx context.Context, a *api, rep *Report, sz sizes, name string) error {
	t, err := newLoadTarget(a.base, a.token, "/v1/functions/"+url.PathEscape(name)+"/invoke", []byte("{}"))
	if err != nil {
		return err
	}
	// The first second is not measured: it brings up the instances that
	// concurrency needs (cold starts beside the load) and the connections.
	ramp, cancelRamp := context.WithTimeout(ctx, throughputRamp)
	load(ramp, t, sz.clients)
	cancelRamp()
	ctx, cancel := context.WithTimeout(ctx, sz.throughput)
	defer cancel()
	t0 := time.Now()
	n := load(ctx, t, sz.clients)
	elapsed := time.Since(t0)
	rep.Served, rep.Refused, rep.Failed = n.Served, n.Refused, n.Failed
	rep.ThroughputRPS = round(float64(rep.Served) / elapsed.Seconds())
	return nil
}

// percentileMS returns the nearest-rank p-th percentile of ds in
// milliseconds, rounded to microseconds; 0 for no samples. It does not
// modify ds.
func percentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := max(int(math.Ceil(p/100*float64(len(s))))-1, 0)
	return round(float64(s[i]) / float64(time.Millisecond))
}

// round rounds x to three decimals.
func round(x float64) float64 { return math.Round(x*1000) / 1000 }

// ratio returns a/b rounded to three decimals, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a / b)
}
