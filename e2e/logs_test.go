package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// TestShortAndLongLogs: a log shorter than a record's tail (4 kB) lives
// in the invocation record only, a longer one in the log store too; the
// logs command shows both kinds whole, in time order, by function and by
// request, before and after a restart.
func TestShortAndLongLogs(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDev(t, data)
	code := "def handler(event, context):\n" +
		"    for i in range(event.get('lines', 0)):\n" +
		"        print('line %04d of a long log ' % i + 'x' * 40)\n" +
		"    print('short one' if not event.get('lines') else 'done')\n" +
		"    return event\n"
	n.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "talker", code))

	invokeID := func(event string) string {
		r := n.mustCLI(0, "invoke", "talker", "--data", event, "--tail")
		i := strings.Index(r.stderr, "REPORT RequestId: ")
		if i < 0 {
			t.Fatalf("no REPORT line in the tail:\n%s", r.stderr)
		}
		return strings.Fields(r.stderr[i+len("REPORT RequestId: "):])[0]
	}
	short1 := invokeID(`{}`)
	long := invokeID(`{"lines": 200}`) // about 14 kB of log
	short2 := invokeID(`{}`)

	check := func(when string) {
		t.Helper()
		var entries []client.LogEntry
		waitFor(t, patience, when+": the three logs are listed", func() bool {
			r := n.cli("", "logs", "talker", "-o", "json")
			return r.code == 0 && json.Unmarshal([]byte(r.stdout), &entries) == nil && len(entries) == 3
		})
		for i, want := range []string{short1, long, short2} {
			e := entries[i]
			if e.RequestID != want || e.Truncated || !strings.Contains(e.Log, "REPORT RequestId: "+want) {
				t.Fatalf("%s: log %d is %s (truncated %v), want %s whole, in time order:\n%s", when, i, e.RequestID, e.Truncated, want, e.Log)
			}
		}
		if !strings.Contains(entries[0].Log, "short one") {
			t.Fatalf("%s: short log lacks its line:\n%s", when, entries[0].Log)
		}
		if l := entries[1].Log; len(l) < 10<<10 || !strings.Contains(l, "line 0000 of a long log") || !strings.Contains(l, "line 0199") {
			t.Fatalf("%s: the long log is not whole (%d bytes):\n%.300s", when, len(l), l)
		}
		for _, id := range []string{short1, long} {
			var one []client.LogEntry
			r := n.mustCLI(0, "logs", "talker", "--request", id, "-o", "json")
			if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || len(one) != 1 || one[0].RequestID != id || one[0].Truncated {
				t.Fatalf("%s: logs --request %s: %s (%v)", when, id, r.stdout, err)
			}
		}
		// The record keeps the long log's end only.
		var recs []client.Invocation
		r := n.mustCLI(0, "invocations", "talker", "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
			t.Fatalf("%s: invocations: %v\n%s", when, err, r.stdout)
		}
		found := false
		for _, rec := range recs {
			if rec.ID != long {
				continue
			}
			found = true
			if len(rec.LogTail) > 4<<10 || strings.Contains(rec.LogTail, "line 0000") || !strings.Contains(rec.LogTail, "REPORT") {
				t.Fatalf("%s: the record's log tail is not the end of the long log:\n%.300s", when, rec.LogTail)
			}
		}
		if !found {
			t.Fatalf("%s: no record of %s", when, long)
		}
	}
	check("running")
	n.stop()
	n = startDev(t, data)
	check("after a restart")
}

// TestAnInvocationIsListedAsSoonAsItAnswers: the server that answered an
// invocation lists its record and log at once (records are committed in
// batches, up to 100 ms later); nothing here waits.
func TestAnInvocationIsListedAsSoonAsItAnswers(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "prompt", "def handler(event, context):\n    print('seen', event)\n    return 1\n"))
	for i := range 20 {
		status, h, body := n.do("POST", "/v1/functions/prompt/invoke", "application/json", strings.NewReader(`{"i": 1}`))
		id := h.Get(client.HeaderRequestID)
		if status != 200 || id == "" {
			t.Fatalf("invoke %d: %d %s", i, status, body)
		}
		var rec client.Invocation
		status, _, body = n.do("GET", "/v1/invocations/"+id, "", nil)
		if status != 200 || json.Unmarshal(body, &rec) != nil || rec.ID != id || rec.Status != client.StatusSuccess {
			t.Fatalf("invoke %d: GET /v1/invocations/%s right after it answered: %d %s", i, id, status, body)
		}
		var list struct{ Invocations []client.Invocation }
		status, _, body = n.do("GET", "/v1/invocations?function=prompt&limit=1", "", nil)
		if status != 200 || json.Unmarshal(body, &list) != nil || len(list.Invocations) != 1 || list.Invocations[0].ID != id {
			t.Fatalf("invoke %d: the newest invocation listed is not %s: %d %s", i, id, status, body)
		}
		var logs struct{ Logs []client.LogEntry }
		status, _, body = n.do("GET", "/v1/functions/prompt/logs?request_id="+id, "", nil)
		if status != 200 || json.Unmarshal(body, &logs) != nil || len(logs.Logs) != 1 || !strings.Contains(logs.Logs[0].Log, "seen {'i': 1}") {
			t.Fatalf("invoke %d: logs of %s right after it answered: %d %s", i, id, status, body)
		}
		status, _, body = n.do("GET", "/v1/functions/prompt/logs?limit=1", "", nil)
		if status != 200 || json.Unmarshal(body, &logs) != nil || len(logs.Logs) != 1 || logs.Logs[0].RequestID != id {
			t.Fatalf("invoke %d: the newest log listed is not %s's: %d %s", i, id, status, body)
		}
	}
}
