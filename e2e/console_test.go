package e2e

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"nimbus/internal/console/browsertest"
	"nimbus/pkg/client"
)

// The web console, driven in headless Chromium against a real nimbus dev
// (and, for the drain, a real two-worker cluster): every page is checked
// by axe-core for serious or critical violations and saved as a
// screenshot that must not be blank (NIMBUS_SCREENSHOT_DIR keeps them;
// docs/screenshots has a few).
//
// These tests do not call parallel: a browser beside four parallel tests
// of clusters on two cores slowed those past their deadlines (deploys
// over a minute). Run alone, before the parallel tests resume, they add
// about two minutes to the suite.

// hostileLine is a log line that would run script if a page put it in
// the document as markup.
const hostileLine = `<img src=x onerror=alert(1)>`

// consoleBrowser is one test's browser on one console, and the checks
// every page gets.
type consoleBrowser struct {
	t     *testing.T
	ctx   context.Context // the tab; steps take their own deadline
	base  string          // http://127.0.0.1:PORT
	shots string          // screenshot directory
	pages int             // pages checked
}

func newConsoleBrowser(t *testing.T, base string) *consoleBrowser {
	browsertest.RequireDist(t)
	dir := t.TempDir()
	if d := os.Getenv("NIMBUS_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	return &consoleBrowser{t: t, ctx: browsertest.New(t), base: base, shots: dir}
}

// do runs actions with the deadline of a step that may wait on a
// process (a deploy, a cold start).
func (b *consoleBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, patience)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page problems: %q)", what, err, browsertest.Problems(b.ctx))
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a
// promise).
func (b *consoleBrowser) eval(js string) any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, patience)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// text is the text of the first element sel matches ("" if none).
func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	s, _ := b.eval(`(document.querySelector(` + jsQuote(sel) + `) || {textContent: ""}).textContent`).(string)
	return s
}

// count is how many elements sel matches.
func (b *consoleBrowser) count(sel string) int {
	b.t.Helper()
	n, _ := b.eval(`document.querySelectorAll(` + jsQuote(sel) + `).length`).(float64)
	return int(n)
}

// open goes to a console path and waits for its heading.
func (b *consoleBrowser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main h1")))
}

// check runs axe-core on the page (no serious or critical violation)
// and saves its screenshot as name.png (not blank).
func (b *consoleBrowser) check(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, patience)
	defer cancel()
	vs, err := browsertest.Axe(ctx)
	if err != nil {
		b.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range browsertest.Serious(vs) {
		b.t.Errorf("axe on %s: %v", name, v)
	}
	if err := browsertest.Screenshot(ctx, filepath.Join(b.shots, "console-"+name+".png")); err != nil {
		b.t.Errorf("screenshot of %s: %v", name, err)
	}
	b.pages++
}

func jsQuote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// zipDir zips the files of dir (not recursive) into a file of the test's.
func zipDir(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir)+".zip")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(e.Name())
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return out
}

// signedInConsole starts a nimbus dev (with extra flags) and signs a
// browser in with the one-time link its banner prints; the overview is up.
func signedInConsole(t *testing.T, extra ...string) (*devNode, *consoleBrowser) {
	n := startDev(t, t.TempDir(), extra...)
	link := regexp.MustCompile(`Console:\s+(\S+/ui/login\?once=\S+)`).FindStringSubmatch(n.out.String())
	if link == nil {
		t.Fatalf("the banner has no one-time console link:\n%s", n.out.String())
	}
	b := newConsoleBrowser(t, n.url)
	b.do("one-time sign-in",
		chromedp.Navigate(link[1]),
		chromedp.Click(chromedp.CSS(`input[name="once"] ~ button`)),
		browsertest.WaitText("main h1", "Overview"),
	)
	return n, b
}

// TestConsoleQuickstartInABrowser is the quickstart without a terminal:
// sign in with nimbus dev's one-time link, deploy by upload, edit a file
// inline (a syntax error first: refused, shown by line, the edit kept),
// save a test event and invoke it, follow the live tail, preview and
// create a schedule, redrive a dead letter; then a viewer, who sees no
// write controls and whose forged changes are refused.
func TestConsoleQuickstartInABrowser(t *testing.T) {
	n, b := signedInConsole(t)
	b.check("overview")

	// Deploy examples/hello as hello-ui by uploading its zip.
	b.open("/ui/functions")
	b.check("functions-empty")
	b.do("deploy by upload",
		chromedp.Click(chromedp.CSS("details summary")),
		chromedp.SendKeys(chromedp.CSS("#deploy-name"), "hello-ui"),
		chromedp.SetUploadFiles(chromedp.CSS("#deploy-zip"), []string{zipDir(t, "../examples/hello")}),
		chromedp.Click(chromedp.CSS("#deploy-button")),
		browsertest.WaitText("#page-notice", "Deployed revision 1."),
	)
	b.check("function")
	if got := b.text("#revision"); got != "1" {
		t.Fatalf("revision shown after the deploy: %q", got)
	}

	// A non-zip upload is refused with a message, and nothing is stored.
	notZip := filepath.Join(t.TempDir(), "notes.zip")
	os.WriteFile(notZip, []byte("these are not the bytes of a zip"), 0o644)
	b.open("/ui/functions")
	b.do("deploy a non-zip",
		chromedp.Click(chromedp.CSS("details summary")),
		chromedp.SendKeys(chromedp.CSS("#deploy-name"), "not-a-zip"),
		chromedp.SetUploadFiles(chromedp.CSS("#deploy-zip"), []string{notZip}),
		chromedp.Click(chromedp.CSS("#deploy-button")),
		browsertest.WaitText("#page-error", "is not a zip file"),
	)
	if status, _, _ := n.do("GET", "/v1/functions/not-a-zip", "", nil); status != 404 {
		t.Errorf("a refused upload stored a function: GET answers %d", status)
	}

	// Edit main.py inline: a syntax error is refused, shown with its file
	// and line beside the editor, and the edit stays.
	b.open("/ui/functions/hello-ui/code")
	b.do("editor", chromedp.WaitReady(chromedp.CSS(".cm-editor .cm-content")))
	b.check("code")
	b.do("a broken edit",
		chromedp.SendKeys(chromedp.CSS(".cm-content"), "def broken(: "),
		chromedp.Click(chromedp.CSS("#save-code")),
		browsertest.WaitText("#code-error", "line 1"),
	)
	if got := b.text("#code-error"); !strings.Contains(got, "main.py") || !strings.Contains(got, "SyntaxError") {
		t.Errorf("the deploy's error beside the editor: %q", got)
	}
	if v, _ := b.eval(`document.getElementById("content").value`).(string); !strings.HasPrefix(v, "def broken(: ") {
		t.Errorf("the edit was lost after the refused deploy: %.60q", v)
	}
	b.do("the editor marks the line at fault", chromedp.WaitReady(chromedp.CSS(".cm-editor .cm-error-line")))
	if b.count(".cm-error-line") != 1 {
		t.Errorf("the editor marks %d lines", b.count(".cm-error-line"))
	}
	// A good edit deploys as revision 2, and the function runs it.
	b.open("/ui/functions/hello-ui/code")
	b.do("a good edit",
		chromedp.WaitReady(chromedp.CSS(".cm-editor .cm-content")),
		chromedp.SendKeys(chromedp.CSS(".cm-content"), "EDITED = 'in the console'; "),
		chromedp.Click(chromedp.CSS("#save-code")),
		browsertest.WaitText("#page-notice", "as revision 2"),
	)
	var fn client.Function
	if status, _, body := n.do("GET", "/v1/functions/hello-ui", "", nil); status != 200 || json.Unmarshal(body, &fn) != nil || fn.Revision != 2 {
		t.Fatalf("after the inline edit: %d %s", status, body)
	}

	// Save a test event, then invoke it: result, log and REPORT figures.
	b.open("/ui/functions/hello-ui/test")
	b.do("save a test event",
		chromedp.WaitReady(chromedp.CSS(".cm-editor .cm-content")),
		chromedp.SendKeys(chromedp.CSS("#event-name"), "greeting"),
		chromedp.Click(chromedp.CSS("#save-event")),
		browsertest.WaitText("#page-notice", "Saved test event greeting."),
	)
	if status, _, body := n.do("GET", "/v1/functions/hello-ui/test-events/greeting", "", nil); status != 200 {
		t.Fatalf("the saved event is not stored: %d %s", status, body)
	}
	b.do("invoke the test event",
		chromedp.Click(chromedp.CSS("#invoke-button")),
		browsertest.WaitText("#result-status", "Succeeded"),
	)
	if got := b.text("#result-body"); !strings.Contains(got, "Hello, world!") {
		t.Errorf("result: %q", got)
	}
	if got := b.text("#result-log"); !strings.Contains(got, "greeting world from hello-ui") {
		t.Errorf("log: %q", got)
	}
	if got := b.text("#result-report"); !strings.Contains(got, "Duration") || !strings.Contains(got, "ms") || !strings.Contains(got, "MB used") {
		t.Errorf("REPORT figures: %q", got)
	}
	b.check("test")

	// The live tail shows a new invocation's log, as text.
	b.open("/ui/functions/hello-ui/logs")
	b.do("the tail connects", browsertest.WaitText("[data-tail-status]", "live"))
	payload, _ := json.Marshal(map[string]string{"name": hostileLine})
	if status, _, body := n.do("POST", "/v1/functions/hello-ui/invoke", "application/json", strings.NewReader(string(payload))); status != 200 {
		t.Fatalf("invoke: %d %s", status, body)
	}
	b.do("the new log line arrives", browsertest.WaitText("#tail", "greeting "+hostileLine+" from hello-ui"))
	if b.count("#tail *") != 0 || b.count("main img") != 0 {
		t.Error("a log line became markup")
	}
	b.check("logs")

	// Invocations, with filters, and one invocation's page.
	b.open("/ui/functions/hello-ui/invocations?status=success")
	if b.count("tbody tr") < 2 {
		t.Errorf("the invocations tab lists %d successes, want at least 2", b.count("tbody tr"))
	}
	b.check("invocations")
	b.do("open an invocation", chromedp.Click(chromedp.CSS("tbody tr a")), browsertest.WaitText("main h1", "Invocation"))
	b.check("invocation")
	b.open("/ui/functions/hello-ui/monitor")
	b.do("charts", chromedp.WaitReady(chromedp.CSS("figure .uplot canvas")))
	b.check("monitor")

	// A schedule: a bad expression is explained by field as it is typed,
	// a good one previews its next fire times, and is created.
	b.open("/ui/schedules")
	b.do("a bad expression",
		chromedp.SendKeys(chromedp.CSS("#s-expr"), "cron(99 * * * ? *)"),
		browsertest.WaitText("#schedule-preview", "minute"),
	)
	b.do("submit it anyway",
		chromedp.SendKeys(chromedp.CSS("#s-name"), "every-five"),
		chromedp.Click(chromedp.CSS("#create-schedule")),
		browsertest.WaitText("#page-error", "minute"),
	)
	if status, _, body := n.do("GET", "/v1/schedules/every-five", "", nil); status != 404 {
		t.Fatalf("a refused schedule was stored: %d %s", status, body)
	}
	b.eval(`document.getElementById("s-expr").value = ""`)
	b.do("a good expression",
		chromedp.SendKeys(chromedp.CSS("#s-expr"), "rate(5 minutes)"),
		browsertest.WaitText("#schedule-preview", "Next five fire times"),
	)
	if got := b.count("#schedule-preview li"); got != 5 {
		t.Errorf("the preview lists %d fire times, want 5", got)
	}
	b.check("schedules")
	b.do("create the schedule",
		chromedp.Click(chromedp.CSS("#create-schedule")),
		browsertest.WaitText("#page-notice", "Created schedule every-five."),
	)
	if status, _, body := n.do("GET", "/v1/schedules/every-five", "", nil); status != 200 {
		t.Fatalf("the schedule is not stored: %d %s", status, body)
	}

	// A dead letter: inspected, then redriven.
	dir := writeFunction(t, t.TempDir(), "failer", "def handler(event, context):\n    raise ValueError('boom')\n")
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: failer\nretries: 0\n"), 0o644)
	n.mustCLI(0, "deploy", dir)
	n.mustCLI(0, "invoke", "failer", "--async", "--data", `{"order": 7}`)
	waitFor(t, patience, "the failure becomes a dead letter", func() bool {
		_, _, body := n.do("GET", "/v1/deadletters", "", nil)
		return strings.Contains(string(body), `"failer"`)
	})
	b.open("/ui/deadletters")
	if got := b.text("main"); !strings.Contains(got, "ValueError") || !strings.Contains(got, `"order": 7`) {
		t.Errorf("the dead letter's error and event are not shown: %.400q", got)
	}
	b.check("deadletters")
	b.do("redrive it",
		chromedp.Click(chromedp.CSS("article form button")),
		browsertest.WaitText("#page-notice", "Queued 1 event(s) again."),
	)

	// The other pages an admin has, and the overview now that there is
	// something to chart.
	for _, p := range []string{"invocations", "subscriptions", "cluster", "namespaces", "keys", "users", "audit"} {
		b.open("/ui/" + p)
		b.check(p)
	}
	b.open("/ui/")
	b.do("the overview's charts", chromedp.WaitReady(chromedp.CSS("figure .uplot canvas")))
	if got := b.text("#total-invocations"); got == "0" || got == "" {
		t.Errorf("the overview counts %q invocations in the last hour", got)
	}
	b.check("overview-busy")

	// A session that ends while a form is filled in: sending it goes to
	// the sign-in page, which comes back with what was typed.
	b.open("/ui/schedules")
	b.do("fill in a schedule",
		chromedp.SendKeys(chromedp.CSS("#s-name"), "after-expiry"),
		chromedp.SendKeys(chromedp.CSS("#s-expr"), "rate(1 hour)"),
		browsertest.WaitText("#schedule-preview", "Next five fire times"),
	)
	b.eval(`fetch("/ui/logout", {method: "POST", headers: {"X-CSRF-Token": JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]}}).then(r => r.status)`)
	b.do("send it after the session ended",
		chromedp.Click(chromedp.CSS("#create-schedule")),
		browsertest.WaitText("main h1", "Sign in"),
	)
	b.do("sign in again",
		chromedp.SendKeys(chromedp.CSS("#key"), n.token),
		chromedp.Click(chromedp.CSS("#key ~ button")),
		browsertest.WaitText("#draft-restored", "what you typed is back"),
	)
	if name, expr := b.eval(`document.getElementById("s-name").value`), b.eval(`document.getElementById("s-expr").value`); name != "after-expiry" || expr != "rate(1 hour)" {
		t.Errorf("the form after signing in again holds %q and %q", name, expr)
	}
	b.do("send it again",
		chromedp.Click(chromedp.CSS("#create-schedule")),
		browsertest.WaitText("#page-notice", "Created schedule after-expiry."),
	)

	// A viewer: no write controls, and a forged change is refused.
	user := `{"name":"vera","role":"viewer","password":"viewer-pass-1"}`
	if status, _, body := n.do("POST", "/v1/users", "application/json", strings.NewReader(user)); status != 201 {
		t.Fatalf("create the viewer: %d %s", status, body)
	}
	b.do("sign out", chromedp.Click(chromedp.CSS(`form[action="/ui/logout"] button`)), browsertest.WaitText("main h1", "Sign in"))
	b.check("login")
	b.do("sign in as the viewer",
		chromedp.SendKeys(chromedp.CSS("#name"), "vera"),
		chromedp.SendKeys(chromedp.CSS("#password"), "viewer-pass-1"),
		chromedp.Click(chromedp.CSS(`#password ~ button`)),
		browsertest.WaitText("main h1", "Overview"),
	)
	b.open("/ui/functions")
	if b.count("#deploy-form") != 0 || b.count("#deploy-button") != 0 {
		t.Error("a viewer sees the deploy form")
	}
	b.open("/ui/functions/hello-ui/code")
	if b.count("#save-code") != 0 || b.count("textarea[data-editor]") != 0 {
		t.Error("a viewer sees the code editor")
	}
	b.open("/ui/functions/hello-ui/test")
	if b.count("#invoke-button") != 0 {
		t.Error("a viewer sees the invoke button")
	}
	forge := func(withToken bool) float64 {
		token := `JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]`
		headers := "{}"
		if withToken {
			headers = `{"X-CSRF-Token": ` + token + `}`
		}
		js := fmt.Sprintf(`(async () => { const f = new FormData(); f.append("action", "save"); f.append("memory", "512"); f.append("timeout", "3s");
			const r = await fetch("/ui/functions/hello-ui", {method: "POST", headers: %s, body: f}); return r.status; })()`, headers)
		s, _ := b.eval(js).(float64)
		return s
	}
	if got := forge(true); got != 403 {
		t.Errorf("a viewer's POST with its CSRF token answered %v, want 403", got)
	}
	if got := forge(false); got != 403 {
		t.Errorf("a POST without a CSRF token answered %v, want 403", got)
	}
	if status, _, body := n.do("GET", "/v1/functions/hello-ui", "", nil); status != 200 || json.Unmarshal(body, &fn) != nil || fn.Revision != 2 || fn.MemoryMB == 512 {
		t.Errorf("a refused change changed the function: %d %s", status, body)
	}
	if b.pages < 15 {
		t.Errorf("checked %d pages, want every page", b.pages)
	}
	for _, p := range browsertest.Problems(b.ctx) {
		// The refused upload, edit and schedule answered 4xx on purpose.
		if !strings.Contains(p, "the server responded with a status of 4") {
			t.Errorf("page problem: %s", p)
		}
	}
}

// TestConsoleDrainsAWorker drains one worker of a two-worker cluster from
// the cluster page, as an admin signed in with the cluster's key.
func TestConsoleDrainsAWorker(t *testing.T) {
	c := startCluster(t, 1, 2)
	base := "http://" + c.servers[0].addr
	b := newConsoleBrowser(t, base)
	b.do("sign in with the key",
		chromedp.Navigate(base+"/ui/login"),
		chromedp.SendKeys(chromedp.CSS("#key"), c.token),
		chromedp.Click(chromedp.CSS(`#key ~ button`)),
		browsertest.WaitText("main h1", "Overview"),
	)
	b.open("/ui/cluster")
	if got := b.count(`form[action="/ui/cluster"] input[value="drain"]`); got != 2 {
		t.Fatalf("the cluster page offers %d drains, want 2", got)
	}
	cl, err := c.clusterView(0)
	if err != nil {
		t.Fatal(err)
	}
	id := cl.Workers[0].ID
	b.do("drain "+id,
		chromedp.Click(chromedp.CSS(`#worker-`+id+` button`)),
		browsertest.WaitText("#page-notice", "Worker "+id+": drain requested."),
	)
	waitFor(t, patience, id+" is draining", func() bool {
		cl, err := c.clusterView(0)
		if err != nil {
			return false
		}
		for _, w := range cl.Workers {
			if w.ID == id {
				return w.State == "draining"
			}
		}
		return false
	})
	b.open("/ui/cluster")
	if got := b.text("#worker-" + id); !strings.Contains(got, "draining") || !strings.Contains(got, "Undrain") {
		t.Errorf("the drained worker's row: %q", got)
	}
	b.check("cluster-drained")
}

// TestConsoleShowsCodeOnEveryServer opens a function's code page on each
// server of a three-server cluster, one of which has lost its copy of the
// package (a deploy replicates it to a majority only): that server
// fetches it from another.
func TestConsoleShowsCodeOnEveryServer(t *testing.T) {
	c := startCluster(t, 3, 1) // a deploy needs a worker that offers the runtime
	c.deployEverywhere("shown", "# the code the console shows\ndef handler(event, context):\n    return 1\n", "")
	status, body, err := c.api(0, shortHTTP, "GET", "/v1/functions/shown", nil, nil)
	var fn client.Function
	if err != nil || status != 200 || json.Unmarshal(body, &fn) != nil {
		t.Fatalf("get: %d %s %v", status, body, err)
	}
	lost := filepath.Join(c.dir, c.servers[2].id, "blobs", fn.CodeSHA256[:2], fn.CodeSHA256)
	if err := os.Remove(lost); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for i, s := range c.servers {
		base := "http://" + s.addr
		form := url.Values{"key": {c.token}, "next": {"/ui/functions/shown/code"}}
		req, _ := http.NewRequest("POST", base+"/ui/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, Timeout: patience}
		resp, err := hc.Do(req) // follows the redirect to the code page
		if err != nil {
			t.Fatalf("%s: %v", s.id, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), "# the code the console shows") {
			t.Errorf("%s (index %d): the code page answered %d without the code:\n%.600s", s.id, i, resp.StatusCode, page)
		}
	}
	if _, err := os.Stat(lost); err != nil {
		t.Errorf("the server that fetched the package did not keep it: %v", err)
	}
}

// TestConsolePlaygroundRunsAProgram signs in, opens the playground, runs
// its sample program (which answers each line it reads), sends it lines
// through the input box and ends its input; the output shows each answer
// and stderr, and the status the exit. Then a program that loops is
// interrupted and one that outlives its timeout is ended by it.
func TestConsolePlaygroundRunsAProgram(t *testing.T) {
	_, b := signedInConsole(t)
	b.do("open the playground", chromedp.Click(chromedp.CSS(`nav a[href="/ui/playground"]`)), browsertest.WaitText("main h1", "Playground"))
	// Run is enabled once the page's script has taken the form over.
	b.do("the editor", chromedp.WaitVisible(chromedp.CSS(".cm-content")))
	b.do("Run enabled", chromedp.WaitEnabled(chromedp.CSS("#run-button")))
	b.do("Run", chromedp.Click(chromedp.CSS("#run-button")))
	defer func() {
		if t.Failed() {
			t.Logf("status %q, output %q, url %v", b.text("#run-status"), b.text("#run-output"), b.eval("location.href"))
		}
	}()
	b.do("output", browsertest.WaitText("#run-output", "Type a line"), browsertest.WaitText("#run-status", "Running."))
	b.do("send a line",
		chromedp.SendKeys(chromedp.CSS("#run-input"), "nimbus"),
		chromedp.Click(chromedp.CSS("#run-send")),
		browsertest.WaitText("#run-output", "1: submin"),
	)
	b.do("send another",
		chromedp.SendKeys(chromedp.CSS("#run-input"), "abc"),
		chromedp.Click(chromedp.CSS("#run-send")),
		browsertest.WaitText("#run-output", "2: cba"),
	)
	b.check("playground")
	b.do("end its input", chromedp.Click(chromedp.CSS("#run-eof")),
		browsertest.WaitText("#run-status", "exited with status 0"), browsertest.WaitText("#run-output .stderr", "bye"))

	// A loop, interrupted; the traceback is on stderr.
	// The program goes into the form's textarea, which the editor keeps
	// in step with itself and the run reads.
	setProgram := func(src string) {
		b.eval(`(() => { document.getElementById("run-source").value = ` + jsQuote(src) + `; return true })()`)
	}
	setProgram("import time\nprint('looping')\nwhile True:\n    time.sleep(0.1)\n")
	b.do("run the loop", chromedp.WaitEnabled(chromedp.CSS("#run-button")), chromedp.Click(chromedp.CSS("#run-button")), browsertest.WaitText("#run-output", "looping"))
	b.do("interrupt it", chromedp.Click(chromedp.CSS("#run-interrupt")),
		browsertest.WaitText("#run-output", "KeyboardInterrupt"), browsertest.WaitText("#run-status", "exited with status 130"))
	if b.count("#run-output .stderr") == 0 {
		t.Fatal("the traceback is not shown as stderr")
	}

	// The timeout ends a sleeper, with its verdict.
	setProgram("import time\ntime.sleep(600)\n")
	b.do("a timeout of one second",
		chromedp.SetValue(chromedp.CSS("#run-timeout"), "1s"),
		chromedp.WaitEnabled(chromedp.CSS("#run-button")),
		chromedp.Click(chromedp.CSS("#run-button")),
		browsertest.WaitText("#run-status", "Sandbox.Timeout"))
}
