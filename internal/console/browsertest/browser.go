package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumEnv names a Chromium binary to use instead of Debian's.
const chromiumEnv = "NIMBUS_CHROMIUM"

// harness is what New keeps in the context it returns.
type harness struct {
	tb testing.TB

	mu       sync.Mutex
	problems []string // guarded by mu
}

type harnessKey struct{}

func harnessOf(ctx context.Context) *harness {
	h, _ := ctx.Value(harnessKey{}).(*harness)
	return h
}

// New starts a fresh headless Chromium with a user data directory of its
// own and returns the chromedp context of one tab in it. The browser stops
// when the test ends. New skips the test when no Chromium is installed and
// fails it when the browser is there but does not start.
//
// The context must not be given a deadline of its own (that would stop the
// browser); derive one with context.WithTimeout for single steps.
func New(t testing.TB) context.Context {
	t.Helper()
	bin := chromiumPath(t)
	dataDir := t.TempDir() // removed after the browser stopped: cleanups run last-in first-out
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	h := &harness{tb: t}
	tabCtx, tabCancel := chromedp.NewContext(context.WithValue(allocCtx, harnessKey{}, h))
	t.Cleanup(func() {
		tabCancel()
		allocCancel() // waits for the browser to exit
	})
	// Listen starts the browser and opens the tab.
	if err := chromedp.Listen(tabCtx, h.record); err != nil {
		t.Fatalf("browsertest: start %s: %v", bin, err)
	}
	return tabCtx
}

// chromiumPath returns the browser to run, from $NIMBUS_CHROMIUM, Debian's
// /usr/bin/chromium or chromium on PATH; it skips the test when there is
// none.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("browsertest: $%s: %v", chromiumEnv, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium not found: install Debian's chromium (scripts/deps does) or set $" + chromiumEnv)
	return ""
}

// record keeps the events that mean something went wrong in the page. It
// runs on chromedp's reading goroutine, so it only appends.
func (h *harness) record(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		p = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			p += " " + d.Exception.Description
		}
		if d.URL != "" {
			p += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		args := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				args = append(args, a.Description)
			case len(a.Value) > 0:
				args = append(args, string(a.Value))
			default:
				args = append(args, string(a.Type))
			}
		}
		p = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
	case *log.EventEntryAdded:
		e := ev.Entry
		// Errors of any source (a CSP violation, a failed load), and the
		// security warnings (report-only CSP, mixed content).
		if e.Level != log.EntryLevelError && !(e.Level == log.EntryLevelWarning && e.Source == log.EntrySourceSecurity) {
			return
		}
		p = fmt.Sprintf("log %s %s: %s", e.Source, e.Level, e.Text)
		if e.URL != "" {
			p += " (" + e.URL + ")"
		}
	default:
		return
	}
	h.mu.Lock()
	h.problems = append(h.problems, p)
	h.mu.Unlock()
}

// Problems returns what went wrong in the tab of ctx so far: uncaught
// exceptions, console.error calls, and log entries of level error
// (Content-Security-Policy violations, failed loads) or security warnings.
// A page that works returns none. ctx must come from New.
func Problems(ctx context.Context) []string {
	h := harnessOf(ctx)
	if h == nil {
		panic("browsertest: Problems needs a context from New")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.problems...)
}

// WaitText waits until the first element that matches the CSS selector sel
// has text content that contains text, up to the deadline of the context
// the action runs with (or 30 s). A navigation meanwhile (a form posted
// without htmx, a redirect) does not end the wait: it polls the new page,
// and only once it has loaded (its scripts run, htmx's attributes
// wired): text that shows while the page is still parsing could let the
// next action type into an input nothing listens to yet.
func WaitText(sel, text string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(timeoutOf(ctx))
		for {
			_, err := chromedp.PollFunction[bool](
				`(sel, text) => { const el = document.querySelector(sel); return document.readyState === "complete" && !!el && el.textContent.includes(text); }`,
				chromedp.WithPollingArgs(sel, text),
				chromedp.WithPollingInterval(pollEvery),
				chromedp.WithPollingTimeout(time.Until(deadline)),
			)(ctx, tg)
			if err != nil && navigated(err) && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return chromedp.Void{}, ctx.Err()
				case <-time.After(pollEvery):
				}
				continue
			}
			if errors.Is(err, chromedp.ErrPollingTimeout) {
				err = fmt.Errorf("browsertest: %q never showed %q", sel, text)
			}
			return chromedp.Void{}, err
		}
	}
}

// navigated reports whether err says the page went away under a script
// (the tab navigated), or had no document yet to run it in.
func navigated(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "navigated or closed") || strings.Contains(msg, "Cannot find context") ||
		strings.Contains(msg, "Execution context was destroyed")
}

// RepoRoot returns the root of the repository: the nearest directory at
// or above the working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("browsertest: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// RequireDist returns the directory of the console's built assets
// (internal/console/static/dist) and skips the test when they are not
// built.
func RequireDist(t testing.TB) string {
	t.Helper()
	dist := filepath.Join(RepoRoot(t), "internal", "console", "static", "dist")
	for _, f := range []string{"app.js", "htmx.min.js", "uplot.css"} {
		if _, err := os.Stat(filepath.Join(dist, f)); err != nil {
			t.Skipf("console assets not built (%s missing): run scripts/ui-vendor", f)
		}
	}
	return dist
}

// pollEvery is how often WaitText looks at the page.
const pollEvery = 50 * time.Millisecond

// timeoutOf returns the time left before ctx's deadline, or 30 s when it
// has none.
func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 30 * time.Second
}
