package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// releaseFixture is the data directory of the latest release kept for
// replay (testdata/release-*/README.md says how it was made).
const releaseFixture = "testdata/release-da2c3ac"

// replayExpect is the fixture's expect.json: what the release was asked
// to store, and the secrets to check it with.
type replayExpect struct {
	Commit        string `json:"commit"`
	WebhookSecret string `json:"webhook_secret"`
	Tokens        struct {
		CI, Late              string
		RevokedBeforeSnapshot string `json:"revoked_before_snapshot"`
		RevokedAfterSnapshot  string `json:"revoked_after_snapshot"`
	} `json:"tokens"`
	Passwords struct {
		Ada, Vic  string
		VicBefore string `json:"vic_before"`
	} `json:"passwords"`
	Requests struct {
		HelloRev1           string `json:"hello_rev1"`
		HelloRev2           string `json:"hello_rev2"`
		HelloRev3           string `json:"hello_rev3"`
		Orders              string `json:"orders"`
		Later               string `json:"later"`
		Notify              string `json:"notify"`
		NotifyAfterSnapshot string `json:"notify_after_snapshot"`
		Redriven            string `json:"redriven"`
		DeadLetter          string `json:"dead_letter"`
	} `json:"requests"`
	Subscriptions struct {
		Flaky string `json:"flaky"`
		TeamB string `json:"team_b"`
	} `json:"subscriptions"`
	Ticker, Early fireState
}

// fireState is what a schedule had recorded of its fires.
type fireState struct {
	LastSlot    time.Time `json:"last_slot"`
	LastRequest string    `json:"last_request"`
	Fires       int64     `json:"fires"`
}

// copyTree copies the directory src to dst (which must not exist).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatalf("copying the fixture: %v", err)
	}
}

// cliJSON runs the CLI with -o json and decodes its output into v.
func (n *devNode) cliJSON(v any, args ...string) {
	n.t.Helper()
	r := n.mustCLI(0, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		n.t.Fatalf("nimbus %s -o json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// recordIn is GET /v1/invocations/{id} in namespace ns.
func (n *devNode) recordIn(ns, id string) client.Invocation {
	n.t.Helper()
	status, _, b := n.callIn(n.t, n.token, ns, "GET", "/v1/invocations/"+id, "")
	var rec client.Invocation
	if status != 200 || json.Unmarshal(b, &rec) != nil {
		n.t.Fatalf("GET /v1/invocations/%s in %s: %d %s", id, ns, status, b)
	}
	return rec
}

// TestReplayOfReleaseData starts the code under test on a copy of a data
// directory written by the last release (a Raft snapshot and log entries
// after it, function code, logs) and checks what a user would: every
// object the release stored is there with its settings, old records and
// logs can be read, functions still run, secrets still authenticate, the
// revoked ones do not, and schedules carry on from their last fire.
func TestReplayOfReleaseData(t *testing.T) {
	parallel(t)
	var exp replayExpect
	b, err := os.ReadFile(filepath.Join(releaseFixture, "expect.json"))
	if err != nil || json.Unmarshal(b, &exp) != nil {
		t.Fatalf("reading %s/expect.json: %v", releaseFixture, err)
	}
	data := filepath.Join(t.TempDir(), "data")
	copyTree(t, filepath.Join(releaseFixture, "data"), data)
	// The records are as old as the fixture: a long retention keeps the
	// first batch this node commits from dropping them.
	n := startDev(t, data, "--prestart", "0", "--record-retention", "87600h")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nimbus output:\n%s", n.out.String())
		}
	})

	// Old records and their logs, read before anything new runs. (Sync
	// records keep no result: the caller had it.)
	checkRecord := func(ns, id, fn string, rev int64, trigger, status, result string) {
		t.Helper()
		rec := n.recordIn(ns, id)
		if rec.Function != fn || rec.Revision != rev || rec.Trigger != trigger || rec.Status != status || !strings.Contains(compactJSON(rec.Result), result) {
			t.Errorf("record %s: %s rev %d, %s, %s, result %s; want %s rev %d, %s, %s, result with %s",
				id, rec.Function, rec.Revision, rec.Trigger, rec.Status, rec.Result, fn, rev, trigger, status, result)
		}
	}
	req := exp.Requests
	checkRecord("", req.HelloRev1, "hello", 1, "sync", client.StatusSuccess, "")
	checkRecord("", req.HelloRev2, "hello", 2, "sync", client.StatusSuccess, "")
	checkRecord("", req.HelloRev3, "hello", 3, "sync", client.StatusSuccess, "")
	checkRecord("team-a", req.Orders, "orders", 1, "sync", client.StatusSuccess, "")
	checkRecord("team-b", req.Later, "later", 1, "sync", client.StatusSuccess, "")
	checkRecord("", req.Notify, "notify", 1, "async", client.StatusSuccess, `"channel":"ops"`)
	checkRecord("", req.NotifyAfterSnapshot, "notify", 1, "async", client.StatusSuccess, `"channel":"ops"`)
	checkRecord("", req.Notify+"-success", "sink", 1, "destination:notify", client.StatusSuccess, `"responsePayload"`)
	checkRecord("", req.NotifyAfterSnapshot+"-success", "sink", 1, "destination:notify", client.StatusSuccess, `"responsePayload"`)
	checkRecord("", req.Redriven, "flaky", 2, "async", client.StatusSuccess, `"fixed":true`)
	checkRecord("", req.DeadLetter, "flaky", 1, "async", client.StatusDeadLetter, "")
	var recs []client.Invocation
	n.cliJSON(&recs, "invocations", "hello")
	for _, id := range []string{req.HelloRev1, req.HelloRev2, req.HelloRev3} {
		if !slices.ContainsFunc(recs, func(r client.Invocation) bool { return r.ID == id }) {
			t.Errorf("nimbus invocations hello does not list %s: %+v", id, recs)
		}
	}
	for id, want := range map[string]string{req.HelloRev1: "greeting rev1 from hello", req.HelloRev2: "greeting rev2 from hello",
		req.HelloRev3: "greeting rev3 from hello"} {
		if out := n.mustCLI(0, "logs", "hello", "--request", id).stdout; !strings.Contains(out, want) {
			t.Errorf("nimbus logs hello --request %s: %q, want %q", id, out, want)
		}
	}
	if out := n.mustCLI(0, "logs", "flaky", "--request", req.DeadLetter).stdout; !strings.Contains(out, "flaky rev 1 got {'n': 2}") {
		t.Errorf("the dead letter's log: %q", out)
	}
	if out := n.mustCLI(0, "--namespace", "team-a", "logs", "orders").stdout; !strings.Contains(out, "summarised 3 orders for 2 customers") {
		t.Errorf("nimbus logs orders in team-a: %q", out)
	}

	// Functions: revision, configuration and code.
	fns := map[string]client.Function{}
	for _, ns := range []string{"default", "team-a", "team-b"} {
		var list []client.Function
		n.cliJSON(&list, "--namespace", ns, "ls")
		for _, f := range list {
			fns[f.QualifiedName()] = f
		}
	}
	revisions := map[string]int64{}
	for q, f := range fns {
		revisions[q] = f.Revision
	}
	wantRevisions := map[string]int64{"default/hello": 3, "default/flaky": 2, "default/notify": 1, "default/sink": 1,
		"default/tick": 1, "team-a/orders": 1, "team-b/later": 1}
	if !maps.Equal(revisions, wantRevisions) {
		t.Errorf("functions and revisions: %v, want %v", revisions, wantRevisions)
	}
	var hello, notify client.Function
	n.cliJSON(&hello, "get", "hello")
	if hello.MemoryMB != 256 || time.Duration(hello.Timeout) != 5*time.Second || hello.Env["GREETING"] != "Hi" || hello.Description != "says hello" {
		t.Errorf("hello: %+v", hello)
	}
	n.cliJSON(&notify, "get", "notify")
	if notify.MemoryMB != 192 || time.Duration(notify.Timeout) != 7*time.Second || notify.Env["CHANNEL"] != "ops" ||
		notify.Retries == nil || *notify.Retries != 1 || time.Duration(notify.RetryDelay) != 2*time.Second ||
		time.Duration(notify.MaxEventAge) != 5*time.Minute || notify.Destinations == nil ||
		notify.Destinations.OnSuccess != "function:sink" || notify.Destinations.OnFailure != "function:sink" {
		t.Errorf("notify: %+v (destinations %+v)", notify, notify.Destinations)
	}
	if f := fns["default/flaky"]; f.Retries == nil || *f.Retries != 0 {
		t.Errorf("flaky: retries %v, want 0", f.Retries)
	}
	if f := fns["team-a/orders"]; f.ReservedConcurrency == nil || *f.ReservedConcurrency != 2 || f.MemoryMB != 256 ||
		time.Duration(f.Timeout) != 10*time.Second {
		t.Errorf("orders: %+v", f)
	}
	if _, ok := n.function("gone"); ok {
		t.Errorf("function gone, removed with rm --force, is back")
	}
	for _, c := range []struct{ ns, fn, event, want string }{
		{"default", "hello", `{"name":"replay"}`, `"Hi, replay!"`},
		{"default", "flaky", `{"n":3}`, `"fixed":true`},
		{"default", "notify", `{"alert":"replay"}`, `"channel":"ops"`},
		{"default", "sink", `{"a":1}`, `"sink":["a"]`},
		{"default", "tick", `{"id":"by-hand"}`, `"tick":"by-hand"`},
		{"team-a", "orders", `{"orders":[{"id":"o1","customer":"ada","items":[{"sku":"pen","qty":2,"price":"1.50"}]}]}`, `"customers":{"ada":"3.00"}`},
		{"team-b", "later", `{"x":1}`, `"later":{"x":1}`},
	} {
		r := n.mustCLI(0, "--namespace", c.ns, "invoke", c.fn, "--data", c.event)
		if !strings.Contains(compactJSON([]byte(r.stdout)), c.want) {
			t.Errorf("invoke %s/%s: %q, want %s", c.ns, c.fn, r.stdout, c.want)
		}
	}

	// Namespaces.
	var nss []client.Namespace
	n.cliJSON(&nss, "namespaces", "ls")
	gotNS := map[string]client.Namespace{}
	for _, ns := range nss {
		gotNS[ns.Name] = ns
	}
	if len(gotNS) != 3 || gotNS["team-a"].Concurrency != 8 || gotNS["team-a"].ScanPolicy != "off" || gotNS["team-b"].Concurrency != 5 {
		t.Errorf("namespaces: %+v; want default, team-a (8, off), team-b (5)", nss)
	}

	// Keys: the live ones work (ci only in team-a), the revoked ones are
	// refused.
	var keys []client.Key
	n.cliJSON(&keys, "keys", "ls")
	keyIDs := map[string]client.Key{}
	for _, k := range keys {
		keyIDs[k.ID] = k
	}
	tokenID := func(tok string) string { return strings.Split(tok, "_")[1] }
	if len(keys) != 3 || keyIDs[tokenID(exp.Tokens.CI)].Namespace != "team-a" || keyIDs[tokenID(exp.Tokens.Late)].Role != "developer" {
		t.Errorf("keys: %+v; want the admin key, ci (team-a) and late", keys)
	}
	if status, _, b := n.callIn(t, exp.Tokens.CI, "", "GET", "/v1/functions", ""); status != 200 || !strings.Contains(string(b), `"orders"`) ||
		strings.Contains(string(b), `"hello"`) {
		t.Errorf("ci key lists functions: %d %s", status, b)
	}
	if status, _, _ := n.callIn(t, exp.Tokens.CI, "default", "GET", "/v1/functions", ""); status != 403 {
		t.Errorf("ci key naming another namespace: %d, want 403", status)
	}
	if status, _, _ := n.callIn(t, exp.Tokens.Late, "", "GET", "/v1/functions/hello", ""); status != 200 {
		t.Errorf("late key: %d, want 200", status)
	}
	for _, tok := range []string{exp.Tokens.RevokedBeforeSnapshot, exp.Tokens.RevokedAfterSnapshot} {
		if status, _, b := n.callIn(t, tok, "", "GET", "/v1/functions", ""); status != 401 {
			t.Errorf("revoked key %s: %d %s, want 401", tokenID(tok), status, b)
		}
	}

	// Users: the passwords set last work, the replaced one and the
	// removed user do not.
	var users []client.User
	n.cliJSON(&users, "users", "ls")
	if len(users) != 2 || users[0].Name != "ada" || users[0].Role != "admin" || users[1].Name != "vic" || users[1].Namespace != "team-a" {
		t.Errorf("users: %+v; want ada (admin) and vic (viewer, team-a)", users)
	}
	for _, c := range []struct {
		name, password string
		want           int
	}{
		{"ada", exp.Passwords.Ada, 200}, {"vic", exp.Passwords.Vic, 200}, {"vic", exp.Passwords.VicBefore, 401}, {"tmp", "Tmp-User-2024", 401},
	} {
		if status, _ := n.login(t, c.name, c.password); status != c.want {
			t.Errorf("login %s: %d, want %d", c.name, status, c.want)
		}
	}

	// Subscriptions and the webhook secret.
	var subs []client.Subscription
	n.cliJSON(&subs, "subscriptions", "ls")
	if len(subs) != 1 || subs[0].ID != exp.Subscriptions.Flaky || subs[0].Function != "flaky" ||
		!slices.Equal(subs[0].On, []string{"dead_letter"}) || subs[0].Webhook != "http://127.0.0.1:9/nimbus-hook" {
		t.Errorf("subscriptions: %+v", subs)
	}
	n.cliJSON(&subs, "--namespace", "team-b", "subscriptions", "ls")
	if len(subs) != 1 || subs[0].ID != exp.Subscriptions.TeamB || !slices.Equal(subs[0].On, []string{"success", "failure"}) {
		t.Errorf("team-b subscriptions: %+v", subs)
	}
	if got := strings.TrimSpace(n.mustCLI(0, "webhooks", "secret").stdout); got != exp.WebhookSecret {
		t.Errorf("webhook secret %q, want %q", got, exp.WebhookSecret)
	}

	// Audit: entries from before and after the snapshot.
	var audit []client.AuditEntry
	n.cliJSON(&audit, "audit", "--limit", "1000")
	for _, action := range []string{"PUT /v1/namespaces/team-a", "DELETE /v1/keys/" + tokenID(exp.Tokens.RevokedAfterSnapshot), "POST /v1/logout"} {
		if !slices.ContainsFunc(audit, func(e client.AuditEntry) bool { return e.Action == action }) {
			t.Errorf("the audit log has no %q", action)
		}
	}

	// Dead letters: the one left is listed and redrives (to the fixed
	// revision); the one redriven before is gone.
	dls := n.deadLetters("")
	if len(dls) != 1 || dls[0].RequestID != req.DeadLetter || dls[0].Function != "flaky" || compactJSON(dls[0].Event) != `{"n":2}` ||
		dls[0].Reason != client.ReasonRetriesExhausted {
		t.Errorf("dead letters: %+v; want %s only", dls, req.DeadLetter)
	}
	n.mustCLI(0, "deadletters", "redrive", req.DeadLetter)
	rec := n.waitRecord(req.DeadLetter, patience, "the redriven dead letter succeeds", func(r client.Invocation) bool {
		return r.Status == client.StatusSuccess
	})
	if rec.Revision != 2 || !strings.Contains(compactJSON(rec.Result), `"n":2`) {
		t.Errorf("redriven record: %+v", rec)
	}
	if dls := n.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters after the redrive: %+v", dls)
	}

	// Schedules: as stored, and the ticker carries on after its last
	// fire without firing a slot again.
	var scs []client.Schedule
	n.cliJSON(&scs, "schedules", "ls")
	sched := map[string]client.Schedule{}
	for _, sc := range scs {
		sched[sc.Name] = sc
	}
	if len(sched) != 4 {
		t.Errorf("schedules: %+v; want early, nightly, noon-paris and ticker", scs)
	}
	// early fired and was disabled before the snapshot.
	if sc := sched["early"]; !sc.Disabled || sc.Expression != "@every 5s" || compactJSON(sc.Event) != `{"id":"early"}` ||
		sc.Fires != exp.Early.Fires || !sc.LastSlot.Equal(exp.Early.LastSlot) || sc.LastRequest != exp.Early.LastRequest {
		t.Errorf("early: %+v; want disabled, fires, last slot and request %+v", sc, exp.Early)
	}
	checkRecord("", exp.Early.LastRequest, "tick", 1, "schedule:early", client.StatusSuccess, `"tick":"early"`)
	// nightly's last slot is when it was last enabled (slots before it
	// never fire).
	if sc := sched["nightly"]; !sc.Disabled || sc.Timezone != "America/New_York" || sc.Expression != "cron(0 3 * * ? *)" || sc.Fires != 0 ||
		!sc.NextFire.IsZero() || sc.LastSlot.IsZero() || sc.LastSlot.After(exp.Ticker.LastSlot) {
		t.Errorf("nightly: %+v", sc)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	if sc := sched["noon-paris"]; sc.Disabled || sc.Timezone != "Europe/Paris" || sc.Policy != "forbid" || compactJSON(sc.Event) != `{"name":"Paris"}` {
		t.Errorf("noon-paris: %+v", sc)
	} else if nf := sc.NextFire.In(paris); nf.Hour() != 12 || nf.Minute() != 0 || time.Until(nf) > 25*time.Hour {
		t.Errorf("noon-paris next fires at %v, want the next noon in Paris", nf)
	}
	if sc := sched["ticker"]; sc.Disabled || sc.Timezone != "Europe/Berlin" || sc.Expression != "@every 10s" || sc.Fires < exp.Ticker.Fires {
		t.Errorf("ticker: %+v", sc)
	}
	var ticker client.Schedule
	waitFor(t, patience, "the ticker fires after its last fire in the fixture", func() bool {
		ticker = n.schedule("ticker")
		return ticker.Fires > exp.Ticker.Fires && ticker.LastSlot.After(exp.Ticker.LastSlot)
	})
	var fires map[int64]client.Invocation
	waitFor(t, patience, "the ticker's new fires have records", func() bool {
		fires = fireRecords(t, "ticker", n.invocations("tick"))
		return int64(len(fires)) >= ticker.Fires
	})
	old := 0
	for slot, r := range fires {
		if slot <= exp.Ticker.LastSlot.Unix() {
			old++
			if r.Attempts != 1 || r.Status != client.StatusSuccess {
				t.Errorf("fixture fire %s ran again: %d attempts, %s", r.ID, r.Attempts, r.Status)
			}
		}
	}
	if int64(old) != exp.Ticker.Fires {
		t.Errorf("%d records of fires at or before the fixture's last slot, want %d", old, exp.Ticker.Fires)
	}
	if last := n.recordIn("", exp.Ticker.LastRequest); last.Attempts != 1 || last.Status != client.StatusSuccess {
		t.Errorf("the fixture's last fire: %+v", last)
	}
	t.Logf("ticker: %d fires (fixture: %d), %d missed while the fixture sat on disk", ticker.Fires, exp.Ticker.Fires, ticker.Missed)

	// Nothing in the log or snapshot was skipped or failed to decode. (A
	// command that does not decode is returned as Apply's result, which
	// nobody reads at replay, and is not logged: the checks above are
	// what catch one.)
	bad := regexp.MustCompile(`(?i)skipping log entry|decode|unknown command|restore|level=ERROR|panic`)
	for _, line := range strings.Split(n.out.String(), "\n") {
		// (The line saying how long loading took names its restore step.)
		if bad.MatchString(line) && !strings.Contains(line, "127.0.0.1:9/") && !strings.Contains(line, `msg="raft state loaded"`) {
			t.Errorf("node log: %s", line)
		}
	}
}

// compactJSON is b without insignificant space (b itself if it is not
// JSON), to compare JSON however it was indented.
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, bytes.TrimSpace(b)) != nil {
		return string(b)
	}
	return buf.String()
}
