package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chromedp/chromedp"
)

// Violation is one axe-core rule that the page breaks.
type Violation struct {
	ID     string   // the rule, e.g. "color-contrast"
	Impact string   // minor, moderate, serious or critical
	Help   string   // what the rule asks for
	Nodes  []string // each offending element: its CSS target and HTML
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s %v", v.ID, v.Impact, v.Help, v.Nodes)
}

// axeRun runs axe on the whole document and keeps what Violation holds.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then((r) => r.violations.map((v) => ({
	id: v.id, impact: v.impact || "", help: v.help,
	nodes: v.nodes.map((n) => [].concat(n.target).join(" ") + " " + n.html),
})))`

// Axe runs the axe-core accessibility checks on the page of ctx (from New)
// and returns the rules it breaks. axe.min.js comes from
// web/node_modules/axe-core (scripts/ui-vendor installs it); when it is
// not there the test is skipped, so Axe must be called from the test's
// goroutine. The script is evaluated through the DevTools protocol, which
// the page's Content-Security-Policy does not govern, so the page needs no
// exception for it.
func Axe(ctx context.Context) ([]Violation, error) {
	h := harnessOf(ctx)
	if h == nil {
		panic("browsertest: Axe needs a context from New")
	}
	path := filepath.Join(RepoRoot(h.tb), "web", "node_modules", "axe-core", "axe.min.js")
	src, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		h.tb.Skipf("axe-core not installed (%s missing): run scripts/ui-vendor", path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
		return nil, fmt.Errorf("browsertest: load axe-core: %w", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("browsertest: run axe-core: %w", err)
	}
	var out []struct {
		ID     string   `json:"id"`
		Impact string   `json:"impact"`
		Help   string   `json:"help"`
		Nodes  []string `json:"nodes"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("browsertest: axe-core result: %w", err)
	}
	vs := make([]Violation, 0, len(out))
	for _, v := range out {
		vs = append(vs, Violation{ID: v.ID, Impact: v.Impact, Help: v.Help, Nodes: v.Nodes})
	}
	return vs, nil
}

// Serious returns the violations of impact serious or critical.
func Serious(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}
