package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"nimbus/internal/runtime/python"
	"nimbus/pkg/client"
)

// A node given --runtime offers that interpreter alone (and provided,
// which every worker offers): nimbus runtimes says so, and a deploy for
// another runtime is refused with the list.
func TestANodeOffersExactlyTheRuntimesItIsGiven(t *testing.T) {
	parallel(t)
	found, err := python.Discover()
	if err != nil {
		t.Skip(err)
	}
	rt := found[len(found)-1] // the oldest: not what discovery would put first, where there are several
	n := startDev(t, t.TempDir(), "--runtime", rt.Name+"="+rt.Executable)
	var offers []client.RuntimeOffer
	if err := json.Unmarshal([]byte(n.mustCLI(0, "runtimes", "-o", "json").stdout), &offers); err != nil || len(offers) != 2 || offers[0].Name != rt.Name || len(offers[0].Workers) != 1 || offers[1].Name != "provided" {
		t.Fatalf("runtimes: %+v %v", offers, err)
	}
	if out := n.mustCLI(0, "runtimes").stdout; !strings.Contains(out, rt.Name) {
		t.Fatalf("runtimes table:\n%s", out)
	}
	dir := t.TempDir()
	if r := n.cli("", "deploy", writeFunction(t, dir, "other", okHandler), "--runtime", "python3.99"); r.code == 0 || !strings.Contains(r.stderr, "python3.99") || !strings.Contains(r.stderr, rt.Name) {
		t.Fatalf("a deploy for a runtime the node lacks: %+v", r)
	}
	n.mustCLI(0, "deploy", writeFunction(t, dir, "same", okHandler))
	if r := n.mustCLI(0, "invoke", "same"); !strings.Contains(r.stdout, "ok") {
		t.Fatalf("invoke: %+v", r)
	}
}

// In a cluster whose workers offer different runtimes, a function runs
// only on the workers that offer its own. It needs two interpreters on
// this host (pyenv builds beside Debian's); with one it skips.
func TestAFunctionRunsOnlyOnWorkersThatOfferItsRuntime(t *testing.T) {
	parallel(t)
	found, err := python.Discover()
	if err != nil || len(found) < 2 {
		t.Skipf("one Python runtime on this host (%v): nothing to tell apart", err)
	}
	newest, oldest := found[0], found[len(found)-1]
	c := startCluster(t, 1, 0)
	c.addWorkerArgs("--token", c.token, "--runtime", oldest.Name+"="+oldest.Executable)
	only := c.addWorkerArgs("--token", c.token, "--runtime", newest.Name+"="+newest.Executable, "--runtime", oldest.Name+"="+oldest.Executable)
	var last result
	defer func() {
		if t.Failed() {
			t.Logf("last nimbus runtimes: %+v", last)
		}
	}()
	waitFor(t, patience, "both workers offer their runtimes", func() bool {
		var offers []client.RuntimeOffer
		r := c.cli(0, 20*time.Second, "runtimes", "-o", "json")
		last = r
		// Then provided, which every worker offers.
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &offers) == nil && len(offers) == 3 &&
			offers[0].Name == newest.Name && len(offers[0].Workers) == 1 && len(offers[1].Workers) == 2 &&
			offers[2].Name == "provided" && len(offers[2].Workers) == 2
	})
	dir := t.TempDir()
	c.mustCLI(0, 0, "deploy", writeFunction(t, dir, "fresh", quickHandler), "--runtime", newest.Name)
	for range 6 {
		c.mustCLI(0, 0, "invoke", "fresh")
	}
	waitFor(t, patience, "six records of fresh", func() bool {
		recs, err := c.invocationsOn(0, "fresh")
		if err != nil || len(recs) != 6 {
			return false
		}
		for _, r := range recs {
			if r.Worker != c.workers[only].id {
				t.Fatalf("an invocation of a %s function ran on %s, which does not offer it", newest.Name, r.Worker)
			}
		}
		return true
	})
}
