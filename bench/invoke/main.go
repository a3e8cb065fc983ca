// Command invoke measures invocations end to end through the Nimbus REST
// API, against the baselines of the same run.
//
// It starts its own `nimbus dev` on a free loopback port with a fresh data
// directory (building the binary unless -bin names one), or uses -url and
// -token. For each runtime (python3.11, and the default newest runtime if
// it is another) it deploys no-op handlers (`def handler(e, c): return
// None`) and measures, with one keep-alive Go HTTP client:
//
//   - cold: the first invoke of each of -n freshly deployed functions;
//   - warm: -warm sequential invokes of one function whose instance is warm.
//
// Interleaved with them, so that they share the machine's noise, it
// measures the baselines: `python -I -S -c pass` with the same resolved
// interpreter (beside the cold invokes), and beside the warm invokes a bare
// HTTP round trip to a trivial Go handler on loopback and a round trip over
// a pipe to a bare Python echo loop. It reports
//
//	cold_ratio = cold_p50_ms / python_startup_p50_ms
//	warm_ratio = warm_p50_ms / http_rtt_p50_ms
//
// and, as issue 7 defines it, warm_ratio_with_pipe = warm_p50_ms /
// (http_rtt_p50_ms + pipe_rtt_p50_ms).
//
//	go run ./bench/invoke [-n 20] [-warm 200] [-url URL -token T] [-o json]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"nimbus/bench/internal/stats"
	"nimbus/internal/runtime/python"
)

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine  stats.Machine   `json:"machine"`
	Target   string          `json:"target"`   // "own nimbus dev" or the -url given
	Executor string          `json:"executor"` // the worker's executor, when known
	Cold     int             `json:"cold_n"`
	Warm     int             `json:"warm_n"`
	Runtimes []RuntimeResult `json:"runtimes"`
}

// RuntimeResult holds one runtime's figures. The flat *_ms keys and the
// ratios are those of issue 7; the summaries carry the full spread.
type RuntimeResult struct {
	Runtime     string `json:"runtime"`
	Interpreter string `json:"interpreter"`
	Default     bool   `json:"default"` // the newest runtime, used when a function names none

	PythonStartupP50MS float64 `json:"python_startup_p50_ms"`
	HTTPRTTP50MS       float64 `json:"http_rtt_p50_ms"`
	PipeRTTP50MS       float64 `json:"pipe_rtt_p50_ms"`
	ColdP50MS          float64 `json:"cold_p50_ms"`
	ColdP99MS          float64 `json:"cold_p99_ms"`
	WarmP50MS          float64 `json:"warm_p50_ms"`
	WarmP99MS          float64 `json:"warm_p99_ms"`
	ColdRatio          float64 `json:"cold_ratio"`
	WarmRatio          float64 `json:"warm_ratio"`
	WarmRatioWithPipe  float64 `json:"warm_ratio_with_pipe"`
	// NotCold counts "cold" invokes the platform did not mark as cold
	// starts (X-Nimbus-Cold-Start); they are measured all the same.
	NotCold int `json:"not_cold"`
	// ColdSamplesMS are the cold invokes in the order they ran.
	ColdSamplesMS []float64 `json:"cold_samples_ms"`

	ColdSummary          stats.Summary `json:"cold"`
	WarmSummary          stats.Summary `json:"warm"`
	PythonStartupSummary stats.Summary `json:"python_startup"`
	HTTPRTTSummary       stats.Summary `json:"http_rtt"`
	PipeRTTSummary       stats.Summary `json:"pipe_rtt"`
}

type options struct {
	cold, warm, warmup int
	runtimes           []string // names; "default" for the newest
	url, token, bin    string
}

func main() {
	var o options
	var rts, format string
	flag.IntVar(&o.cold, "n", 20, "cold invokes per runtime (one freshly deployed function each)")
	flag.IntVar(&o.warm, "warm", 200, "warm invokes per runtime")
	flag.IntVar(&o.warmup, "warmup", 10, "unmeasured warm invokes and baseline rounds first")
	flag.StringVar(&rts, "runtimes", "python3.11,default", "runtimes to measure, comma-separated; \"default\" is the newest (skipped when already listed)")
	flag.StringVar(&o.url, "url", "", "use this Nimbus API instead of starting a nimbus dev")
	flag.StringVar(&o.token, "token", os.Getenv("NIMBUS_TOKEN"), "API key for -url (default $NIMBUS_TOKEN)")
	flag.StringVar(&o.bin, "bin", "", "nimbus binary to start (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.Parse()
	o.runtimes = strings.Split(rts, ",")
	if o.cold < 1 || o.warm < 1 || o.warmup < 0 || (format != "table" && format != "json") || (o.url != "" && o.token == "") {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		os.Exit(1)
	}
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	printTable(os.Stdout, res)
}

func run(ctx context.Context, o options) (res *Result, err error) {
	res = &Result{Machine: stats.ThisMachine(), Target: o.url, Cold: o.cold, Warm: o.warm}
	base, token := o.url, o.token
	if base == "" {
		res.Target = "own nimbus dev on 127.0.0.1"
		fmt.Fprintln(os.Stderr, "starting nimbus dev...")
		node, err := startDev(ctx, o.bin)
		if err != nil {
			return nil, err
		}
		defer func() {
			err = errors.Join(err, node.stop())
		}()
		base, token = node.url, node.token
		defer func() { res.Executor = node.Executor() }()
	}
	local, err := python.Discover()
	if err != nil {
		return nil, err
	}
	trivial := newTrivialServer()
	defer trivial.Close()
	m := &measurer{
		api: newAPI(base, token), httpAPI: newAPI(trivial.URL, token),
		o: o, local: local, prefix: "bench-" + randomHex(3),
	}
	// A function deployed without a runtime gets the default one.
	probe := m.prefix + "-probe"
	fn, err := m.api.deploy(ctx, probe, "")
	if err != nil {
		return nil, err
	}
	if err := m.api.remove(ctx, probe); err != nil {
		return nil, err
	}
	m.defaultRuntime = fn.Runtime

	done := map[string]bool{}
	for _, name := range o.runtimes {
		if name == "default" {
			name = m.defaultRuntime
		}
		if done[name] {
			continue
		}
		done[name] = true
		r, err := m.runtime(ctx, name)
		if err != nil {
			return nil, err
		}
		res.Runtimes = append(res.Runtimes, *r)
	}
	return res, nil
}

// measurer runs the measurements of one run.
type measurer struct {
	api            *api
	httpAPI        *api // the trivial Go server, with the same client setup
	o              options
	local          []python.Runtime
	prefix         string // of every function name this run deploys
	defaultRuntime string // what a function that names no runtime gets
}

// runtime measures the runtime called name.
func (m *measurer) runtime(ctx context.Context, name string) (*RuntimeResult, error) {
	tag := strings.NewReplacer("python", "", ".", "").Replace(name)
	warmName := fmt.Sprintf("%s-%s-warm", m.prefix, tag)
	var deployed []string
	defer func() {
		// Leave nothing behind on a server we did not start.
		for _, f := range deployed {
			if err := m.api.remove(context.WithoutCancel(ctx), f); err != nil {
				fmt.Fprintln(os.Stderr, "invoke: warning:", err)
			}
		}
	}()
	fn, err := m.api.deploy(ctx, warmName, name)
	if err != nil {
		return nil, err
	}
	deployed = append(deployed, warmName)
	interp, err := python.Pick(m.local, fn.Runtime)
	if err != nil {
		return nil, fmt.Errorf("the baseline needs %s on this machine: %w", fn.Runtime, err)
	}
	r := &RuntimeResult{Runtime: fn.Runtime, Interpreter: interp.Executable, Default: fn.Runtime == m.defaultRuntime}
	fmt.Fprintf(os.Stderr, "%s (%s): cold...\n", fn.Runtime, interp.Executable)
	if err := m.cold(ctx, r, tag, &deployed); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s: warm...\n", fn.Runtime)
	if err := m.warm(ctx, r, warmName); err != nil {
		return nil, err
	}
	r.ColdP50MS, r.ColdP99MS = r.ColdSummary.P50MS, r.ColdSummary.P99MS
	r.WarmP50MS, r.WarmP99MS = r.WarmSummary.P50MS, r.WarmSummary.P99MS
	r.PythonStartupP50MS = r.PythonStartupSummary.P50MS
	r.HTTPRTTP50MS = r.HTTPRTTSummary.P50MS
	r.PipeRTTP50MS = r.PipeRTTSummary.P50MS
	r.ColdRatio = stats.Ratio(r.ColdP50MS, r.PythonStartupP50MS)
	r.WarmRatio = stats.Ratio(r.WarmP50MS, r.HTTPRTTP50MS)
	r.WarmRatioWithPipe = stats.Ratio(r.WarmP50MS, r.HTTPRTTP50MS+r.PipeRTTP50MS)
	return r, nil
}

// cold deploys -n functions, then invokes each once; before each invoke
// it starts bare Python enough times to gather at least 50 samples.
func (m *measurer) cold(ctx context.Context, r *RuntimeResult, tag string, deployed *[]string) error {
	names := make([]string, m.o.cold)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%s-c%d", m.prefix, tag, i)
		if _, err := m.api.deploy(ctx, names[i], r.Runtime); err != nil {
			return err
		}
		*deployed = append(*deployed, names[i])
	}
	perInvoke := (50 + m.o.cold - 1) / m.o.cold
	for i := 0; i < m.o.warmup/2; i++ {
		if _, err := pythonStart(r.Interpreter); err != nil {
			return err
		}
	}
	var cold, py []time.Duration
	for _, name := range names {
		for k := 0; k < perInvoke; k++ {
			d, err := pythonStart(r.Interpreter)
			if err != nil {
				return err
			}
			py = append(py, d)
		}
		d, wasCold, err := m.api.invoke(ctx, name)
		if err != nil {
			return err
		}
		if !wasCold {
			r.NotCold++
		}
		cold = append(cold, d)
		r.ColdSamplesMS = append(r.ColdSamplesMS, stats.MS(d))
	}
	r.ColdSummary = stats.Summarize(cold)
	r.PythonStartupSummary = stats.Summarize(py)
	return nil
}

// warm invokes name once to start its instance, then -warmup unmeasured
// rounds and -warm measured ones of: an HTTP round trip to the trivial Go
// server, a pipe round trip to Python, and an invoke.
func (m *measurer) warm(ctx context.Context, r *RuntimeResult, name string) error {
	echo, err := startPipeEcho(r.Interpreter)
	if err != nil {
		return err
	}
	defer echo.close()
	if _, _, err := m.api.invoke(ctx, name); err != nil {
		return err
	}
	var warm, rtt, pipe []time.Duration
	for i := 0; i < m.o.warmup+m.o.warm; i++ {
		t0 := time.Now()
		status, _, body, err := m.httpAPI.do(ctx, "POST", "/", []byte("{}"))
		h := time.Since(t0)
		if err != nil {
			return err
		}
		if status != 200 || string(body) != "null" {
			return fmt.Errorf("trivial server: %d %s", status, body)
		}
		p, err := echo.roundTrip()
		if err != nil {
			return fmt.Errorf("pipe echo: %w", err)
		}
		w, _, err := m.api.invoke(ctx, name)
		if err != nil {
			return err
		}
		if i >= m.o.warmup {
			warm, rtt, pipe = append(warm, w), append(rtt, h), append(pipe, p)
		}
	}
	r.WarmSummary = stats.Summarize(warm)
	r.HTTPRTTSummary = stats.Summarize(rtt)
	r.PipeRTTSummary = stats.Summarize(pipe)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func printTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "invoke end to end through the API: %s; executor %s\n", res.Target, res.Executor)
	fmt.Fprintf(w, "%d CPUs %s, kernel %s; %s; cold n=%d, warm n=%d (sequential, keep-alive)\n",
		res.Machine.NumCPU, res.Machine.CPU, res.Machine.Kernel, res.Machine.Date, res.Cold, res.Warm)
	for _, r := range res.Runtimes {
		def := ""
		if r.Default {
			def = ", the default runtime"
		}
		fmt.Fprintf(w, "\n%s (%s%s)\n", r.Runtime, r.Interpreter, def)
		fmt.Fprintf(w, "  %-34s %9s %9s %9s %9s %9s\n", "ms", "min", "p50", "p90", "p99", "max")
		row := func(name string, s stats.Summary) {
			fmt.Fprintf(w, "  %-34s %9.3f %9.3f %9.3f %9.3f %9.3f\n", fmt.Sprintf("%s (n=%d)", name, s.N), s.MinMS, s.P50MS, s.P90MS, s.P99MS, s.MaxMS)
		}
		row("cold invoke", r.ColdSummary)
		row("bare python -I -S -c pass", r.PythonStartupSummary)
		row("warm invoke", r.WarmSummary)
		row("bare HTTP round trip", r.HTTPRTTSummary)
		row("bare pipe round trip", r.PipeRTTSummary)
		fmt.Fprintf(w, "  cold_ratio = %.3f   warm_ratio = %.3f   warm_ratio_with_pipe = %.3f\n", r.ColdRatio, r.WarmRatio, r.WarmRatioWithPipe)
		if r.NotCold > 0 {
			fmt.Fprintf(w, "  note: %d of the cold invokes were not marked as cold starts\n", r.NotCold)
		}
	}
}
