// Command console measures the web console's pages on a large
// namespace: by default 1,000 functions and 100,000 invocation records
// (100 per function over the last day, with their metric history),
// committed through the real FSM into a real state store behind a real
// gateway. For every page it reports the server time (the gateway's
// ServeHTTP, in process, requests interleaved across pages so that they
// share the machine's noise) as p50/p99, and its ratio to /healthz's,
// measured in the same run; with Chromium, the first contentful paint of
// each page on loopback, and its ratio to the sign-in page's.
//
//	go run ./bench/console [-functions 1000] [-records 100000] [-n 60] [-paints 5] [-o json]
//
// Issue 16's goals: every page's server time p99 < 50 ms, first
// contentful paint < 300 ms. Nothing here asserts them.
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"nimbus/bench/internal/stats"
	"nimbus/internal/auth"
	"nimbus/internal/blob"
	"nimbus/internal/fsm"
	"nimbus/internal/gateway"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// Page is one page's figures.
type Page struct {
	Path        string        `json:"path"`
	Status      int           `json:"status"`
	Bytes       int           `json:"bytes"`
	Server      stats.Summary `json:"server"`
	RatioP99    float64       `json:"server_p99_vs_healthz"`
	FCPMS       float64       `json:"fcp_ms,omitempty"` // median of -paints loads
	FCPRatio    float64       `json:"fcp_vs_login,omitempty"`
	FCPMeasured bool          `json:"fcp_measured"`
}

// Result is the whole run.
type Result struct {
	Machine   stats.Machine `json:"machine"`
	Functions int           `json:"functions"`
	Records   int           `json:"records"`
	Seed      string        `json:"seed_time"`
	Healthz   stats.Summary `json:"healthz"`
	LoginFCP  float64       `json:"login_fcp_ms,omitempty"`
	Browser   string        `json:"browser"`
	Pages     []Page        `json:"pages"`
}

func main() {
	nFn := flag.Int("functions", 1000, "functions in the namespace")
	nRec := flag.Int("records", 100000, "invocation records, spread over the functions and the last day")
	n := flag.Int("n", 60, "requests per page for the server time")
	paints := flag.Int("paints", 5, "loads per page in Chromium for the first contentful paint (0: none)")
	format := flag.String("o", "table", "output: table or json")
	flag.Parse()
	stats.Main("bench/console", *format, func(ctx context.Context) (Result, error) {
		return run(ctx, *nFn, *nRec, *n, *paints)
	}, table)
}

// control is the gateway's view of a control plane: a store and the
// FSM that writes it, directly (one node, no Raft log).
type control struct {
	fsm.Writer
	store *state.Store
}

func (c control) Store() *state.Store                         { return c.store }
func (c control) Servers(func(string) string) []client.Server { return nil }

func run(ctx context.Context, nFn, nRec, n, paints int) (Result, error) {
	res := Result{Machine: stats.ThisMachine(), Functions: nFn, Records: nRec}
	dir, err := os.MkdirTemp("", "nimbus-bench-console-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := state.New()
	cp := control{Writer: fsm.Direct(fsm.New(s, log)), store: s}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return res, err
	}
	logs, err := logstore.Open(filepath.Join(dir, "logs.db"), 0)
	if err != nil {
		return res, err
	}
	defer logs.Close()
	start := time.Now()
	sample, err := seed(ctx, cp, blobs, nFn, nRec)
	if err != nil {
		return res, err
	}
	res.Seed = time.Since(start).Round(time.Millisecond).String()
	admin, err := auth.CreateKey(ctx, cp, auth.RoleAdmin, "bench")
	if err != nil {
		return res, err
	}
	g := gateway.New(gateway.Config{Control: cp, Blobs: blobs, Logs: logs, Placer: placement.New(nil),
		Registry: prometheus.NewRegistry(), Log: log, APIAddr: "bench"})
	defer g.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: g}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	cookie, err := signIn(base, admin)
	if err != nil {
		return res, err
	}

	mid := fmt.Sprintf("fn-%04d", nFn/2)
	paths := []string{"/ui/", "/ui/?window=24h", "/ui/functions", "/ui/functions?after=" + mid, "/ui/functions?q=9",
		"/ui/functions/" + mid, "/ui/functions/" + mid + "/code", "/ui/functions/" + mid + "/test",
		"/ui/functions/" + mid + "/invocations", "/ui/functions/" + mid + "/invocations?status=failed&since=7d",
		"/ui/functions/" + mid + "/logs", "/ui/functions/" + mid + "/monitor",
		"/ui/invocations", "/ui/invocations?since=7d&trigger=async", "/ui/invocations/" + sample,
		"/ui/schedules", "/ui/deadletters", "/ui/subscriptions", "/ui/cluster", "/ui/namespaces", "/ui/keys",
		"/ui/users", "/ui/audit"}
	times := make([][]time.Duration, len(paths))
	var health []time.Duration
	res.Pages = make([]Page, len(paths))
	get := func(path string) (int, int, time.Duration) {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(&http.Cookie{Name: "nimbus_session", Value: cookie})
		w := httptest.NewRecorder()
		t0 := time.Now()
		g.ServeHTTP(w, r)
		return w.Code, w.Body.Len(), time.Since(t0)
	}
	for i := 0; i < n; i++ { // interleaved: every page once per round
		if err := ctx.Err(); err != nil {
			return res, err
		}
		_, _, d := get("/healthz")
		health = append(health, d)
		for j, p := range paths {
			code, size, d := get(p)
			res.Pages[j].Path, res.Pages[j].Status, res.Pages[j].Bytes = p, code, size
			times[j] = append(times[j], d)
		}
	}
	res.Healthz = stats.Summarize(health)
	for j := range paths {
		res.Pages[j].Server = stats.Summarize(times[j])
		res.Pages[j].RatioP99 = stats.Ratio(res.Pages[j].Server.P99MS, res.Healthz.P99MS)
	}
	if paints > 0 {
		if err := paint(ctx, base, admin, paths, paints, &res); err != nil {
			res.Browser = "not measured: " + err.Error()
		}
	}
	return res, nil
}

// seed deploys nFn functions (one tiny package) and commits nRec records
// over the last day in batches, as the gateways' batchers do; it returns
// one record's id.
func seed(ctx context.Context, cp control, blobs *blob.Store, nFn, nRec int) (string, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, _ := zw.Create("main.py")
	f.Write([]byte("def handler(event, context):\n    print('hello', event)\n    return {'ok': True}\n"))
	zw.Close()
	digest, err := blobs.Put(buf.Bytes())
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	for i := 0; i < nFn; i++ {
		fn := model.Function{FunctionConfig: model.FunctionConfig{Name: fmt.Sprintf("fn-%04d", i), Runtime: "python3.11",
			Handler: "main.handler", MemoryMB: 128, Timeout: model.Duration(3 * time.Second)},
			Namespace: "default", CodeSHA256: digest, CodeSize: int64(buf.Len())}
		if _, err := fsm.Apply(ctx, cp, fsm.UpsertFunction{Function: fn, Now: now}); err != nil {
			return "", err
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	const batch = 1000
	var sample string
	for done := 0; done < nRec; done += batch {
		recs := make([]model.Invocation, 0, batch)
		for k := done; k < min(done+batch, nRec); k++ {
			start := now.Add(-time.Duration(rnd.Int64N(int64(24 * time.Hour))))
			rec := model.Invocation{ID: fmt.Sprintf("bench-%08d", k), Namespace: "default", Function: fmt.Sprintf("fn-%04d", k%nFn),
				Revision: 1, Trigger: []string{"sync", "async", "schedule"}[k%3], Status: model.StatusSuccess, Start: start,
				DurationMS: 1 + rnd.Float64()*40, BilledMS: 41, MemoryMB: 128, MaxMemoryMB: 12, ColdStart: k%50 == 0,
				Result: []byte(`{"ok": true}`), LogTail: "START\nhello {}\nEND\nREPORT Duration: 1.00 ms\n", Worker: "w1"}
			if k%20 == 0 {
				rec.Status, rec.ErrorType = model.StatusFailed, "ValueError"
			}
			recs = append(recs, rec)
			sample = rec.ID
		}
		ret := model.Retention{PerFunction: 1000, MaxAge: 7 * 24 * time.Hour}
		if _, err := fsm.Apply(ctx, cp, fsm.RecordInvocations{Records: recs, Retention: ret, Now: now}); err != nil {
			return "", err
		}
	}
	return sample, nil
}

// signIn signs in on the console's form with the key and returns the
// session cookie's value.
func signIn(base, key string) (string, error) {
	form := url.Values{"key": {key}}
	req, _ := http.NewRequest("POST", base+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "nimbus_session" {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("sign-in answered %s without a session", resp.Status)
}

// paint loads every page in headless Chromium (a fresh profile, signed
// in through the form) and records the median first contentful paint.
func paint(ctx context.Context, base, key string, paths []string, loads int, res *Result) error {
	bin := os.Getenv("NIMBUS_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return errors.New("no Chromium (install Debian's chromium or set NIMBUS_CHROMIUM)")
	}
	res.Browser = bin
	profile, err := os.MkdirTemp("", "nimbus-bench-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	tab, cancelT := chromedp.NewContext(actx)
	defer cancelT()
	step, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	fcp := func(path string) (float64, error) {
		var out []float64
		for i := 0; i < loads; i++ {
			if err := chromedp.Do(step, chromedp.Navigate(base+path)); err != nil {
				return 0, err
			}
			v, err := chromedp.Run(step,
				chromedp.PollFunction[float64](`() => { const e = performance.getEntriesByName("first-contentful-paint")[0]; return e ? e.startTime : 0; }`))
			if err != nil {
				return 0, err
			}
			out = append(out, v)
		}
		sort.Float64s(out)
		return stats.Round(out[len(out)/2]), nil
	}
	login, err := fcp("/ui/login")
	if err != nil {
		return err
	}
	res.LoginFCP = login
	if err := chromedp.Do(step, chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS("#key ~ button")),
		chromedp.WaitReady(chromedp.CSS("nav.main"))); err != nil {
		return err
	}
	for j, p := range paths {
		v, err := fcp(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		res.Pages[j].FCPMS, res.Pages[j].FCPRatio, res.Pages[j].FCPMeasured = v, stats.Ratio(v, login), true
	}
	return nil
}

func table(w io.Writer, r Result) {
	fmt.Fprintf(w, "%d functions, %d records (seeded in %s); /healthz server p50 %.3f ms, p99 %.3f ms; sign-in page FCP %.1f ms; %s\n\n",
		r.Functions, r.Records, r.Seed, r.Healthz.P50MS, r.Healthz.P99MS, r.LoginFCP, r.Browser)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "page\tstatus\tKB\tserver p50 ms\tp99 ms\tp99 / healthz\tFCP ms\tFCP / sign-in\t")
	for _, p := range r.Pages {
		fcp, ratio := "-", "-"
		if p.FCPMeasured {
			fcp, ratio = fmt.Sprintf("%.1f", p.FCPMS), fmt.Sprintf("%.2f", p.FCPRatio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%.0f\t%s\t%s\t\n", p.Path, p.Status, float64(p.Bytes)/1000,
			p.Server.P50MS, p.Server.P99MS, p.RatioP99, fcp, ratio)
	}
	tw.Flush()
}
