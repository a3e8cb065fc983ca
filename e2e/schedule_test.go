package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// schedule is GET /v1/schedules/{name}.
func (n *devNode) schedule(name string) client.Schedule {
	n.t.Helper()
	status, _, b := n.do("GET", "/v1/schedules/"+name, "", nil)
	var sc client.Schedule
	if status != 200 || json.Unmarshal(b, &sc) != nil {
		n.t.Fatalf("GET /v1/schedules/%s: %d %s", name, status, b)
	}
	return sc
}

// putSchedule is PUT /v1/schedules/{name} with body.
func (n *devNode) putSchedule(name string, body map[string]any) (int, client.ErrorBody) {
	n.t.Helper()
	b, _ := json.Marshal(body)
	status, _, resp := n.do("PUT", "/v1/schedules/"+name, "application/json", bytes.NewReader(b))
	var e client.ErrorBody
	json.Unmarshal(resp, &e)
	return status, e
}

// fireRecords returns the records of schedule name's fires by slot (unix
// seconds), failing the test on a record whose id does not name its slot
// or on two records for one slot.
func fireRecords(t *testing.T, name string, recs []client.Invocation) map[int64]client.Invocation {
	t.Helper()
	idRe := regexp.MustCompile(`^sched-` + regexp.QuoteMeta(name) + `-(\d+)$`)
	out := map[int64]client.Invocation{}
	for _, r := range recs {
		if r.Trigger != "schedule:"+name {
			continue
		}
		m := idRe.FindStringSubmatch(r.ID)
		if m == nil {
			t.Errorf("fire record id %q is not sched-%s-<unix>", r.ID, name)
			continue
		}
		slot, _ := strconv.ParseInt(m[1], 10, 64)
		if prev, dup := out[slot]; dup {
			t.Errorf("two records for slot %d: %s and %s", slot, prev.ID, r.ID)
		}
		out[slot] = r
	}
	return out
}

// elapsed returns a waitFor condition that holds once d has passed: a
// poll-based wait for "some time with nothing happening".
func elapsed(d time.Duration) func() bool {
	until := time.Now().Add(d)
	return func() bool { return !time.Now().Before(until) }
}

func TestScheduleEverySecondFiresOncePerSlot(t *testing.T) {
	n := startDev(t, t.TempDir())
	n.mustDeploy("tick", okHandler, nil)

	r := n.mustCLI(0, "schedules", "create", "ticker", "--function", "tick", "--expression", "@every 1s", "--event", `{"from": "ticker"}`)
	if !strings.Contains(r.stdout, "created") {
		t.Errorf("schedules create printed %q", r.stdout)
	}
	start := time.Now()
	waitFor(t, patience, "the schedule fires 4 times", func() bool { return n.schedule("ticker").Fires >= 4 })
	t.Logf("4 fires after %v", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("4 fires of @every 1s within %v: it fires too often", d)
	}
	waitFor(t, patience, "the fired invocations succeed", func() bool {
		fires := fireRecords(t, "ticker", n.invocations("tick"))
		for _, rec := range fires {
			if rec.Status != client.StatusSuccess {
				return false
			}
		}
		return len(fires) >= 4
	})

	// Disable: no slot after the disable fires.
	n.mustCLI(0, "schedules", "disable", "ticker")
	disabledAt := time.Now()
	if sc := n.schedule("ticker"); !sc.Disabled || !sc.NextFire.IsZero() {
		t.Errorf("disabled schedule: disabled %v, next fire %v", sc.Disabled, sc.NextFire)
	}
	waitFor(t, 5*time.Second, "2 s pass with the schedule disabled", elapsed(2*time.Second))
	before := n.schedule("ticker")
	for slot := range fireRecords(t, "ticker", n.invocations("tick")) {
		if slot > disabledAt.Unix() {
			t.Errorf("slot %d fired after the schedule was disabled at %d", slot, disabledAt.Unix())
		}
	}
	waitFor(t, 5*time.Second, "1 s more passes with the schedule disabled", elapsed(time.Second))
	if now := n.schedule("ticker"); now.Fires != before.Fires {
		t.Errorf("a disabled schedule fired: fires %d → %d", before.Fires, now.Fires)
	}

	// Enable: firing resumes without replaying the disabled seconds.
	n.mustCLI(0, "schedules", "enable", "ticker")
	waitFor(t, patience, "the enabled schedule fires twice more", func() bool { return n.schedule("ticker").Fires >= before.Fires+2 })
	after := n.schedule("ticker")
	if after.Missed > before.Missed+1 || after.Missed > 2 {
		t.Errorf("missed %d → %d across a 3 s pause: the disabled period was counted or replayed", before.Missed, after.Missed)
	}
	fires := fireRecords(t, "ticker", n.invocations("tick"))
	if int64(len(fires)) != after.Fires && int64(len(fires)) != after.Fires-1 {
		// One fire may land between the two reads.
		t.Errorf("schedule counts %d fires, %d fire records exist", after.Fires, len(fires))
	}
	for _, rec := range fires {
		if rec.Attempts > 1 {
			t.Errorf("fire %s ran %d times", rec.ID, rec.Attempts)
		}
	}
	t.Logf("ticker: %d fires, %d missed, %d records", after.Fires, after.Missed, len(fires))

	// rm removes it and firing stops.
	n.mustCLI(0, "schedules", "rm", "ticker")
	if status, _, b := n.do("GET", "/v1/schedules/ticker", "", nil); status != 404 {
		t.Fatalf("removed schedule still answers: %d %s", status, b)
	}
	n.mustCLI(3, "schedules", "get", "ticker")
	removedAt := time.Now()
	waitFor(t, 5*time.Second, "2 s pass after rm", elapsed(2*time.Second))
	for slot := range fireRecords(t, "ticker", n.invocations("tick")) {
		if slot > removedAt.Unix() {
			t.Errorf("slot %d fired after the schedule was removed at %d", slot, removedAt.Unix())
		}
	}
}

func TestScheduleCronNextFire(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("noon", okHandler, nil)
	n.mustCLI(0, "schedules", "create", "noon", "--function", "noon", "--expression", "cron(0 12 * * ? *)")
	n.mustCLI(0, "schedules", "create", "quarter", "--function", "noon", "--expression", "*/15 * * * *", "--disabled")

	noonAfter := func(t0 time.Time) time.Time {
		t0 = t0.UTC()
		noon := time.Date(t0.Year(), t0.Month(), t0.Day(), 12, 0, 0, 0, time.UTC)
		if !noon.After(t0) {
			noon = noon.AddDate(0, 0, 1)
		}
		return noon
	}
	before := time.Now()
	r := n.mustCLI(0, "schedules", "ls", "-o", "json")
	after := time.Now()
	var scs []client.Schedule
	if err := json.Unmarshal([]byte(r.stdout), &scs); err != nil {
		t.Fatalf("schedules ls -o json: %v\n%s", err, r.stdout)
	}
	got := map[string]client.Schedule{}
	for _, sc := range scs {
		got[sc.Name] = sc
	}
	if len(got) != 2 {
		t.Fatalf("schedules ls lists %d schedules, want 2: %s", len(got), r.stdout)
	}
	if nf := got["noon"].NextFire; !nf.Equal(noonAfter(before)) && !nf.Equal(noonAfter(after)) {
		t.Errorf("cron(0 12 * * ? *): next fire %v, want %v", nf, noonAfter(before))
	}
	if q := got["quarter"]; !q.Disabled || !q.NextFire.IsZero() || q.Fires != 0 {
		t.Errorf("a schedule created --disabled: %+v", q)
	}
	table := n.mustCLI(0, "schedules", "ls").stdout
	for _, want := range []string{"noon", "cron(0 12 * * ? *)", "enabled", "quarter", "disabled"} {
		if !strings.Contains(table, want) {
			t.Errorf("schedules ls does not show %q:\n%s", want, table)
		}
	}
	var one client.Schedule
	if err := json.Unmarshal([]byte(n.mustCLI(0, "schedules", "get", "noon", "-o", "json").stdout), &one); err != nil || one.Function != "noon" || one.NextFire.IsZero() {
		t.Errorf("schedules get noon: %+v (%v)", one, err)
	}
	// Enabling the 5-field cron gives the next quarter hour.
	n.mustCLI(0, "schedules", "enable", "quarter")
	q := n.schedule("quarter")
	now := time.Now().UTC()
	want := now.Truncate(15 * time.Minute).Add(15 * time.Minute)
	if !q.NextFire.Equal(want) && !q.NextFire.Equal(want.Add(15*time.Minute)) {
		t.Errorf("*/15 * * * *: next fire %v, want %v", q.NextFire, want)
	}
}

func TestScheduleBadInputIsRefusedAndCreatesNothing(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("target", okHandler, nil)
	cases := []struct {
		name      string
		body      map[string]any
		status    int
		wantInMsg []string
	}{
		{"an hour of 25 in an EventBridge cron", map[string]any{"function": "target", "expression": "cron(0 25 * * ? *)"}, 400, []string{"hour", "25"}},
		{"a rate of zero", map[string]any{"function": "target", "expression": "rate(0 minutes)"}, 400, []string{"at least 1"}},
		{"@every under a second", map[string]any{"function": "target", "expression": "@every 500ms"}, 400, []string{"1s"}},
		{"a garbage expression", map[string]any{"function": "target", "expression": "garbage"}, 400, []string{"garbage"}},
		{"an empty expression", map[string]any{"function": "target", "expression": ""}, 400, []string{"empty"}},
		{"an unknown time zone", map[string]any{"function": "target", "expression": "@daily", "timezone": "Mars/Olympus"}, 400, []string{"Mars/Olympus"}},
		{"an unknown function", map[string]any{"function": "no-such-fn", "expression": "@every 1s"}, 404, []string{"no-such-fn"}},
		{"a bad policy", map[string]any{"function": "target", "expression": "@every 1s", "policy": "sometimes"}, 400, []string{"policy"}},
		{"no function", map[string]any{"expression": "@every 1s"}, 400, []string{"function"}},
		{"an unknown field", map[string]any{"function": "target", "expression": "@every 1s", "cron": "x"}, 400, []string{"cron"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, e := n.putSchedule(fmt.Sprintf("bad-%d", i), c.body)
			t.Logf("%d %s", status, e.Error.Message)
			if status != c.status {
				t.Fatalf("got %d %q, want %d", status, e.Error.Message, c.status)
			}
			for _, w := range c.wantInMsg {
				if !strings.Contains(e.Error.Message, w) {
					t.Errorf("message %q does not contain %q", e.Error.Message, w)
				}
			}
		})
	}
	t.Run("the CLI shows the reason and exits 3", func(t *testing.T) {
		r := n.mustCLI(3, "schedules", "create", "bad-cli", "--function", "target", "--expression", "cron(0 25 * * ? *)")
		if !strings.Contains(r.stderr, "hour") {
			t.Errorf("stderr does not name the field: %s", r.stderr)
		}
		n.mustCLI(2, "schedules", "create", "bad-cli", "--function", "target")
	})
	status, _, b := n.do("GET", "/v1/schedules", "", nil)
	var list struct {
		Schedules []client.Schedule `json:"schedules"`
	}
	if status != 200 || json.Unmarshal(b, &list) != nil || len(list.Schedules) != 0 {
		t.Fatalf("refused schedules were created: %d %s", status, b)
	}
	if recs := n.invocations("target"); len(recs) != 0 {
		t.Errorf("refused schedules fired: %+v", recs)
	}
}
