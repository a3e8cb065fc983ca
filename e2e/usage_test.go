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

// budgetNote is what a subscription on "budget" receives.
type budgetNote struct {
	Condition string             `json:"condition"`
	Alert     client.BudgetAlert `json:"budget_alert"`
}

// A budget's thresholds are notified once each (by spend and by
// forecast), and its hard limit refuses invocations with 429
// BudgetExceeded until the budget is raised.
func TestABudgetNotifiesOnceAThresholdAndItsHardLimitThrottlesThenLifts(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--budget-check-every", "1s")
	hooks := newReceiver(t)
	n.mustDeploy("paid", okHandler, nil)
	// A thousandth of a currency unit a request: two requests spend 0.002.
	n.mustCLI(0, "prices", "set", "default", "--currency", "EUR", "--million-requests", "1000", "--gb-second", "0")
	n.mustCLI(0, "subscriptions", "create", "--on", "budget", "--webhook", hooks.srv.URL+"/budget")
	n.mustCLI(0, "budgets", "create", "default", "--monthly", "0.002", "--notify", "50,100", "--hard-limit")

	n.mustCLI(0, "invoke", "paid")
	n.mustCLI(0, "invoke", "paid")
	// The spend reaches 100%: both spend alerts come, the forecast's
	// too, and the hard limit refuses the next invocation.
	keys := func() map[string]int {
		out := map[string]int{}
		for _, d := range hooks.deliveries() {
			var b budgetNote
			if err := json.Unmarshal(d.body, &b); err != nil || b.Condition != "budget" {
				t.Fatalf("a budget notification: %v %s", err, d.body)
			}
			out[b.Alert.Kind+":"+strconv.Itoa(b.Alert.Threshold)]++
		}
		return out
	}
	waitFor(t, 60*time.Second, "the four alerts arrive", func() bool { return len(keys()) == 4 })
	var refused int
	waitFor(t, 60*time.Second, "the hard limit refuses an invocation", func() bool {
		status, h, b := n.do("POST", "/v1/functions/paid/invoke", "application/json", strings.NewReader(`{}`))
		if status == 429 && strings.Contains(string(b), "BudgetExceeded") && h.Get("Retry-After") != "" {
			refused++
			return true
		}
		return false
	})
	if r := n.cli("", "invoke", "paid"); r.code == 0 || !strings.Contains(r.stderr, "budget") {
		t.Fatalf("an invocation past the hard limit: %+v", r)
	}
	var bs []client.Budget
	json.Unmarshal([]byte(n.mustCLI(0, "budgets", "ls", "-o", "json").stdout), &bs)
	if len(bs) != 1 || !bs[0].Exceeded || bs[0].Spent < 0.002 || bs[0].Currency != "EUR" {
		t.Fatalf("budgets ls: %+v", bs)
	}
	// An asynchronous event is accepted and waits in the queue.
	status, queued := n.asyncInvoke("paid", []byte(`{}`))
	if status != 202 {
		t.Fatalf("an async invoke past the hard limit: %d", status)
	}
	if r := n.waitRecord(queued, 30*time.Second, "is listed", func(client.Invocation) bool { return true }); r.Status != client.StatusQueued {
		t.Fatalf("an event past the hard limit: %+v", r)
	}
	// Raised, the limit lifts at once and the queued event runs. The new
	// budget adds a threshold of 1%, which the spend has crossed: its
	// alert shows a check ran after the raise, and the alerts sent before
	// are not sent again.
	n.mustCLI(0, "budgets", "set", "default", "--monthly", "0.1", "--notify", "1,50,100", "--hard-limit")
	n.mustCLI(0, "invoke", "paid")
	n.waitRecord(queued, 60*time.Second, "runs once the budget is raised", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
	waitFor(t, 60*time.Second, "the 1% alert of the raised budget", func() bool { return keys()["spend:1"] == 1 })
	for k, c := range keys() {
		if c != 1 {
			t.Errorf("alert %s delivered %d times", k, c)
		}
	}
	if got := keys(); got["spend:50"] != 1 || got["spend:100"] != 1 || got["forecast:50"] != 1 || got["forecast:100"] != 1 {
		t.Errorf("alerts: %v", got)
	}

	// Bad input: refused with a clear message, nothing stored.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"budgets", "create", "nowhere", "--monthly", "5"}, "nowhere"},
		{[]string{"budgets", "create", "default", "--monthly", "-5"}, "above 0"},
		{[]string{"budgets", "create", "default", "--monthly", "5", "--notify", "0"}, "threshold"},
		{[]string{"budgets", "create", "default", "--monthly", "5", "--notify", "half"}, "percentages"},
		{[]string{"budgets", "create", "default"}, "--monthly"},
	} {
		if r := n.cli("", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: %+v, want an error about %q", c.args, r, c.want)
		}
	}
	json.Unmarshal([]byte(n.mustCLI(0, "budgets", "ls", "-o", "json").stdout), &bs)
	if len(bs) != 1 || bs[0].Monthly != 0.1 {
		t.Errorf("a refused budget changed the stored one: %+v", bs)
	}
}
