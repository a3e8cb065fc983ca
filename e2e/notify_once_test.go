package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// notification is what a subscription's webhook receives.
type notification struct {
	Subscription string            `json:"subscription"`
	Condition    string            `json:"condition"`
	Invocation   client.Invocation `json:"invocation"`
}

// notificationsByID groups a receiver's deliveries by invocation id.
func notificationsByID(t *testing.T, r *receiver) map[string][]notification {
	t.Helper()
	out := map[string][]notification{}
	for _, d := range r.deliveries() {
		var n notification
		if err := json.Unmarshal(d.body, &n); err != nil {
			t.Fatalf("a notification is not JSON: %v\n%s", err, d.body)
		}
		out[n.Invocation.ID] = append(out[n.Invocation.ID], n)
	}
	return out
}

func TestDeadLetterIsNotifiedOnceWithItsLastAttempt(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	subs := newReceiver(t)
	dest := newReceiver(t)
	// The first attempt fails with an error, the retry with a different
	// one; the dead letter must show the retry's.
	n.mustDeploy("doomed", `import os

def handler(event, context):
    marker = "/tmp/tried-" + event["k"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("first attempt")
    x = bytearray(8 << 20)
    raise KeyError("second attempt")
`, map[string]any{"retries": 1, "retry_delay": "1s", "memory": 192,
		"destinations": map[string]string{"on_failure": dest.srv.URL + "/failed"}})
	n.mustCLI(0, "subscriptions", "create", "--on", "dead_letter,failure", "--webhook", subs.srv.URL+"/notes", "--function", "doomed")

	var mu sync.Mutex
	ids := map[string]bool{}
	deadLetter := func(k string) string {
		status, id := n.asyncInvoke("doomed", []byte(`{"k": "`+k+`"}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		mu.Lock()
		ids[id] = true
		mu.Unlock()
		// Its destination's delivery is noted in the record: the update
		// that used to notify a second time has been applied.
		n.waitRecord(id, 60*time.Second, "notes its destination's delivery", func(r client.Invocation) bool {
			return r.Status == client.StatusDeadLetter && strings.Contains(r.Destination, "delivered")
		})
		waitFor(t, 30*time.Second, "the dead letter of "+id+" is notified", func() bool { return len(notificationsByID(t, subs)[id]) > 0 })
		return id
	}
	first := deadLetter("one")
	// A later event, notified after the first's record update was
	// applied, then a bounded wait for any straggler.
	second := deadLetter("two")
	waitFor(t, 10*time.Second, "2 s pass for a duplicate to show", elapsed(2*time.Second))

	got := notificationsByID(t, subs)
	for _, id := range []string{first, second} {
		notes := got[id]
		if len(notes) != 1 {
			t.Errorf("%s: %d notifications, want 1 (one per outcome):", id, len(notes))
			for _, nt := range notes {
				t.Logf("  %+v", nt)
			}
			continue
		}
		nt := notes[0]
		inv := nt.Invocation
		if nt.Condition != "dead_letter" || inv.Status != client.StatusDeadLetter {
			t.Errorf("%s: condition %q status %q, want dead_letter", id, nt.Condition, inv.Status)
		}
		if inv.Revision != 1 || inv.DurationMS <= 0 || inv.MemoryMB != 192 || inv.MaxMemoryMB <= 0 || inv.Attempts != 2 || inv.ErrorType == "" {
			t.Errorf("%s: notified with revision %d, %.1f ms, %d/%d MB, %d attempts, error %q; want the last attempt's figures (revision 1, a duration, memory of 192 MB, 2 attempts)",
				id, inv.Revision, inv.DurationMS, inv.MaxMemoryMB, inv.MemoryMB, inv.Attempts, inv.ErrorType)
		}
		if !strings.Contains(inv.LogTail, "second attempt") {
			t.Errorf("%s: the notified log tail is not the last attempt's: %q", id, inv.LogTail)
		}
	}
	for id := range got {
		mu.Lock()
		known := ids[id]
		mu.Unlock()
		if !known {
			t.Errorf("a notification names an unknown invocation %q", id)
		}
	}

	// The record (what `nimbus invocations` shows) has the same figures.
	rec, _ := n.record(first)
	if rec.Revision != 1 || rec.DurationMS <= 0 || rec.MemoryMB != 192 {
		t.Errorf("dead-letter record: revision %d, %.1f ms, %d MB; want the last attempt's", rec.Revision, rec.DurationMS, rec.MemoryMB)
	}
	table := n.mustCLI(0, "invocations", "doomed").stdout
	for _, line := range strings.Split(table, "\n") {
		// The duration column alone (330.0ms holds "0.0ms" too).
		if f := strings.Fields(line); strings.Contains(line, first) && slices.Contains(f, "0.0ms") {
			t.Errorf("nimbus invocations shows the dead letter without its figures:\n%s", table)
		}
	}
}
