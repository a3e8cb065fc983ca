package e2e

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// burnHandler spends about 50 ms of CPU, so its cgroup has CPU time to
// account.
const burnHandler = `import time
def handler(event, context):
    end = time.process_time() + 0.05
    n = 0
    while time.process_time() < end:
        n += 1
    return {"spins": n}
`

// usageOf is `nimbus usage ARGS -o json` as n's token sees it.
func (n *devNode) usageOf(args ...string) client.Usage {
	n.t.Helper()
	r := n.mustCLI(0, append([]string{"usage", "-o", "json"}, args...)...)
	var u client.Usage
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		n.t.Fatalf("usage -o json: %v\n%s", err, r.stdout)
	}
	return u
}

// Every invocation, sync and async with its retries, is metered once
// from its final record: the usage per function equals the sum over the
// terminal records (requests, GB-seconds), CPU time comes from the
// cgroup, the cost follows the prices, JSON and CSV say the same, the
// figures survive a restart, and a namespace's viewer sees only its own.
func TestUsageMetersEachInvocationOnceFromItsFinalRecord(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDev(t, data)
	n.mustDeploy("burner", burnHandler, map[string]any{"memory": 256})
	n.mustDeploy("boom", raisingHandler, map[string]any{"memory": 128, "retries": 1, "retry_delay": "1s"})
	for range 5 {
		n.mustCLI(0, "invoke", "burner")
	}
	var ids []string
	for range 2 {
		status, id := n.asyncInvoke("boom", []byte(`{}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		n.waitRecord(id, 60*time.Second, "is a dead letter", func(r client.Invocation) bool { return r.Status == client.StatusDeadLetter })
	}
	// What the terminal records say each function used.
	type sum struct {
		requests int64
		mbMS     int64
	}
	want := map[string]sum{}
	for _, fn := range []string{"burner", "boom"} {
		var s sum
		for _, r := range n.invocations(fn) {
			if r.Status == client.StatusSuccess || r.Status == client.StatusFailed || r.Status == client.StatusDeadLetter {
				s.requests++
				s.mbMS += r.BilledMS * int64(r.MemoryMB)
			}
		}
		want[fn] = s
	}
	if want["burner"].requests != 5 || want["boom"].requests != 2 {
		t.Fatalf("terminal records: %+v", want)
	}
	var u client.Usage
	waitFor(t, 30*time.Second, "usage counts the 7 invocations", func() bool {
		u = n.usageOf("--by", "function")
		var total int64
		for _, r := range u.Rows {
			total += r.Requests
		}
		return total == 7
	})
	for _, r := range u.Rows {
		w := want[r.Function]
		if r.Requests != w.requests || r.MBMS != w.mbMS || math.Abs(r.GBSeconds-float64(w.mbMS)/1024000) > 1e-12 {
			t.Errorf("%s: %+v, want %d requests and %d MB·ms", r.Function, r, w.requests, w.mbMS)
		}
	}
	if u.Rows[0].Function != "boom" || u.Rows[0].Errors != 2 || u.Rows[1].Function != "burner" || u.Rows[1].CPUSeconds < 0.04 || u.Rows[1].MaxMemoryMB <= 0 {
		t.Fatalf("rows: %+v (burner spends 50 ms of CPU an invocation)", u.Rows)
	}

	// The same rows as CSV.
	rows, err := csv.NewReader(strings.NewReader(n.mustCLI(0, "usage", "--by", "function", "-o", "csv").stdout)).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "namespace" || rows[0][2] != "requests" || rows[2][1] != "burner" || rows[2][2] != "5" {
		t.Fatalf("csv: %v %v", rows, err)
	}
	if gbs, _ := strconv.ParseFloat(rows[2][7], 64); rows[0][7] != "gb_seconds" || gbs != u.Rows[1].GBSeconds {
		t.Fatalf("csv gb_seconds %q = %v, json %v", rows[0][7], rows[2][7], u.Rows[1].GBSeconds)
	}

	// The cost at the default prices, to the cent and beyond.
	var rep client.CostReport
	if err := json.Unmarshal([]byte(n.mustCLI(0, "cost", "-o", "json").stdout), &rep); err != nil || len(rep.Namespaces) != 1 {
		t.Fatalf("cost: %+v %v", rep, err)
	}
	gbs := float64(want["burner"].mbMS+want["boom"].mbMS) / 1024000
	c := rep.Namespaces[0]
	if wantTotal := 7*0.20/1e6 + gbs*0.0000166667; c.Requests != 7 || math.Abs(c.Total-wantTotal) > 1e-12 {
		t.Fatalf("cost %+v, want %v", c, wantTotal)
	}
	if out := n.mustCLI(0, "cost").stdout; !strings.Contains(out, "default") || !strings.Contains(out, "USD") {
		t.Fatalf("cost table:\n%s", out)
	}

	// A viewer of another namespace sees none of it, and not every
	// namespace's.
	n.mustCLI(0, "namespaces", "create", "team")
	viewer := *n
	viewer.token = n.newKey(t, "--role", "viewer", "--namespace", "team").Secret
	if v := viewer.usageOf(); len(v.Rows) != 1 || v.Rows[0].Requests != 0 {
		t.Fatalf("team's viewer: %+v", v)
	}
	if r := viewer.cli("", "usage", "--all-namespaces"); r.code == 0 || !strings.Contains(r.stderr, "admins") {
		t.Fatalf("team's viewer asked for every namespace: %+v", r)
	}
	if r := n.cli("", "cost", "--month", "2026-13"); r.code != 2 || !strings.Contains(r.stderr, "YYYY-MM") {
		t.Fatalf("a month that does not parse: %+v", r)
	}

	// After a restart the history is what it was.
	before := n.usageOf("--by", "function")
	n.stop()
	n = startDev(t, data)
	if after := n.usageOf("--by", "function"); !usageRowsEqual(after.Rows, before.Rows) {
		t.Fatalf("after a restart:\n%+v\nwant\n%+v", after.Rows, before.Rows)
	}
}

func usageRowsEqual(a, b []client.UsageRow) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
