package browsertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"nimbus/internal/console/browsertest"
)

// csp is the policy the console serves: nothing inline, nothing foreign.
const csp = "default-src 'self'; frame-ancestors 'none'"

// hostile is a log line that would run script if the tail used innerHTML.
const hostile = `<img src=x onerror=alert(1)>`

// A page with every enhanced element: an editor in a form, a chart and a
// log tail, loading the built assets the way the console's layout does.
const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Console assets</title>
<link rel="stylesheet" href="/ui/static/dist/uplot.css">
<link rel="stylesheet" href="/test.css">
<script src="/ui/static/dist/htmx.min.js" defer></script>
<script type="module" src="/ui/static/dist/app.js"></script>
</head>
<body>
<main>
<h1>Console assets</h1>
<form method="post" action="/save">
<label for="code">Handler code</label>
<textarea id="code" name="code" data-editor="python" data-error-line="2">def handle(event):
    return event
</textarea>
<button type="submit">Save</button>
</form>
<figure data-chart="%[1]s">
<figcaption>Invocations per minute</figcaption>
</figure>
<figure id="empty" data-chart="{&quot;x&quot;:[1,2],&quot;series&quot;:[{&quot;label&quot;:&quot;errors&quot;,&quot;values&quot;:[null,null]}],&quot;unit&quot;:&quot;ms&quot;}">
<figcaption>No errors yet</figcaption>
</figure>
<p><code id="token">nb_secret_token</code> <button type="button" data-copy="token">Copy</button></p>
<form data-upload hx-post="/upload" hx-target="#uploaded" hx-encoding="multipart/form-data">
<label for="bundle">Bundle</label>
<input id="bundle" name="bundle" type="file">
<progress aria-label="Upload progress"></progress>
<button type="submit">Upload</button>
</form>
<div id="uploaded"></div>
<section>
<h2>Logs</h2>
<p>Stream: <span data-tail-status>offline</span></p>
<pre data-tail="/logs" tabindex="0"></pre>
</section>
</main>
</body>
</html>
`

// testCSS stands in for console.css: the editor's textarea is hidden, the
// tail scrolls.
const testCSS = `body { font-family: sans-serif; margin: 2rem; }
.cm-hidden { display: none; }
.cm-editor { border: 1px solid #555; }
pre[data-tail] { max-height: 12rem; overflow: auto; border: 1px solid #555; }
`

// maxTailLines is the tail's limit (web/src/tail.js).
const maxTailLines = 2000

func chartJSON(t *testing.T) string {
	t.Helper()
	now := time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC).Unix()
	x := make([]int64, 30)
	calls := make([]any, 30)
	p95 := make([]any, 30)
	for i := range x {
		x[i] = now + int64(i)*60
		calls[i] = 10 + i%7*3
		p95[i] = 4.5 + float64(i%5)
	}
	calls[12], p95[12] = nil, nil // a gap
	b, err := json.Marshal(map[string]any{
		"x": x,
		"series": []map[string]any{
			{"label": "invocations", "values": calls},
			{"label": "p95", "values": p95},
		},
		"unit": "",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serve starts the test's server: the page, the built assets under
// /ui/static/, and /logs, an event stream that sends a long log and then
// the hostile line, and stays open.
func serve(t *testing.T, static string) *httptest.Server {
	t.Helper()
	body := fmt.Sprintf(page, html.EscapeString(chartJSON(t)))
	mux := http.NewServeMux()
	mux.Handle("/ui/static/", http.StripPrefix("/ui/static/", http.FileServer(http.Dir(static))))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("GET /test.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, testCSS)
	})
	// The answer to the upload form: a fragment with a chart, which app.js
	// must draw after htmx swaps it in.
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<figure id=\"swapped\" data-chart=\"%s\"><figcaption>After the upload</figcaption></figure>",
			html.EscapeString(chartJSON(t)))
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		var long strings.Builder
		for i := range maxTailLines + 500 {
			fmt.Fprintf(&long, "line %d\n", i)
		}
		for i, text := range []string{long.String(), hostile + "\n"} {
			b, _ := json.Marshal(map[string]any{
				"request_id": fmt.Sprintf("req-%d", i),
				"function":   "hello",
				"time":       time.Now().UTC().Format(time.RFC3339Nano),
				"log":        text,
			})
			fmt.Fprintf(w, "event: log\ndata: %s\n\n", b)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		mux.ServeHTTP(w, r)
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestConsoleAssetsInChromium(t *testing.T) {
	dist := browsertest.RequireDist(t)
	srv := serve(t, filepath.Dir(dist))
	ctx := browsertest.New(t)

	step, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(step,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(".cm-editor .cm-content")),
		chromedp.WaitReady(chromedp.CSS("figure .uplot canvas")),
		browsertest.WaitText("pre[data-tail]", hostile),
		browsertest.WaitText("[data-tail-status]", "live"),
	)
	if err != nil {
		t.Fatalf("page did not come up: %v (problems: %q)", err, browsertest.Problems(ctx))
	}

	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(step, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	checks := []struct {
		name string
		js   string
		want any
	}{
		{"the textarea is hidden by class, not removed", `document.getElementById("code").classList.contains("cm-hidden")`, true},
		{"the editor is labelled by the textarea's label", `document.querySelector(".cm-content").getAttribute("aria-label")`, "Handler code"},
		{"the error line is marked", `document.querySelectorAll(".cm-error-line").length`, 1.0},
		{"the marked line is line 2", `document.querySelector(".cm-error-line").textContent`, "    return event"},
		{"the chart has a legend with each series", `[...document.querySelectorAll(".u-legend .u-label")].map(e => e.textContent).join(",")`, "Time,invocations,p95"},
		{"the log shows as text", `document.querySelector("pre[data-tail]").textContent.includes(` + jsString(hostile) + `)`, true},
		{"the log made no element", `document.querySelectorAll("pre[data-tail] *").length`, 0.0},
		{"the tail keeps its last lines", `document.querySelector("pre[data-tail]").textContent.split("\n").filter(Boolean).length <= ` + fmt.Sprint(maxTailLines), true},
		{"a chart without values draws nothing", `document.querySelectorAll("#empty .uplot").length`, 0.0},
		{"the upload progress is hidden while nothing is sent", `document.querySelector("form[data-upload] progress").hidden`, true},
		{"the tail dropped the oldest lines", `document.querySelector("pre[data-tail]").textContent.startsWith("line 501\n")`, true},
	}
	for _, c := range checks {
		if got := eval(c.js); got != c.want {
			t.Errorf("%s: %s = %#v, want %#v", c.name, c.js, got, c.want)
		}
	}

	// Typing goes to the editor and through it into the textarea. (No
	// Enter: the protocol's key events would type it twice.)
	if err := chromedp.Do(step, chromedp.SendKeys(chromedp.CSS(".cm-content"), "x = 1")); err != nil {
		t.Fatal(err)
	}
	if got, want := eval(`document.getElementById("code").value`), "def handle(event):\nx = 1    return event\n"; got != want {
		t.Errorf("textarea value after typing = %q, want %q", got, want)
	}
	// Tab leaves the editor for the next control.
	if err := chromedp.Do(step, chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	if got := eval(`document.activeElement.textContent`); got != "Save" {
		t.Errorf("Tab in the editor moved the focus to %q, want the Save button", got)
	}

	// A copy button copies and says so.
	if err := chromedp.Do(step,
		grantClipboard(srv.URL),
		chromedp.Click(chromedp.CSS("[data-copy]")),
		browsertest.WaitText("[data-copy]", "Copied"),
	); err != nil {
		t.Fatal(err)
	}
	clip, err := chromedp.Run(step, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got := clip; got != "nb_secret_token" {
		t.Errorf("clipboard after copy = %q, want %q", got, "nb_secret_token")
	}

	// Content that htmx swaps in is enhanced too.
	if err := chromedp.Do(step,
		chromedp.Click(chromedp.CSS("form[data-upload] button")),
		chromedp.WaitReady(chromedp.CSS("#swapped .uplot canvas")),
	); err != nil {
		t.Fatal(err)
	}
	if got := eval(`document.querySelector("form[data-upload] progress").hidden`); got != true {
		t.Errorf("upload progress hidden after the request = %v, want true", got)
	}

	vs, err := browsertest.Axe(step)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Logf("axe: %v", v)
	}
	for _, v := range browsertest.Serious(vs) {
		t.Errorf("axe, serious: %v", v)
	}

	dir := t.TempDir()
	if d := os.Getenv("NIMBUS_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	if err := browsertest.Screenshot(step, filepath.Join(dir, "console-assets.png")); err != nil {
		t.Error(err)
	}

	for _, p := range browsertest.Problems(ctx) {
		t.Errorf("page problem: %s", p)
	}
}

// grantClipboard lets the page at origin use the clipboard.
func grantClipboard(origin string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name},
				Setting:    browser.PermissionSettingGranted,
				Origin:     origin,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
