package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// A sync invoke answered by a server that has lost its quorum: the record
// cannot be committed, so the server holds it on disk; it lists it
// meanwhile, survives a SIGKILL with it, and commits it once a quorum is
// back, when every server lists it.
func TestARecordThatCannotBeCommittedOutlivesItsServersCrashAndCommitsLater(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	fnDir := writeFunction(t, t.TempDir(), "quick", quickHandler)
	c.mustCLI(0, 0, "deploy", fnDir)
	survivor := 2
	waitFor(t, patience, "the survivor-to-be has the function", func() bool {
		_, ok := c.getFunction(survivor, "quick")
		return ok
	})
	c.killServer(0)
	c.killServer(1)

	r := c.cli(survivor, 60*time.Second, "invoke", "quick", "--data", `{"v": 7}`, "--tail")
	i := strings.Index(r.stderr, "REPORT RequestId: ")
	if r.code != 0 || i < 0 {
		t.Fatalf("invoke without a quorum: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(r.stderr[i+len("REPORT RequestId: "):])[0]
	lists := func(server int) bool {
		var recs []client.Invocation
		r := c.cli(server, 20*time.Second, "invocations", "quick", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil &&
			slices.ContainsFunc(recs, func(rec client.Invocation) bool { return rec.ID == id })
	}
	waitFor(t, 60*time.Second, "the survivor holds the record it could not commit", func() bool {
		c.mu.Lock()
		out := c.servers[survivor].out
		c.mu.Unlock()
		return strings.Contains(out.String(), "holding them for retry")
	})
	if !lists(survivor) {
		t.Fatalf("the survivor does not list invocation %s, whose record it holds", id)
	}

	c.killServer(survivor)
	for i := range c.servers {
		c.restartServer(i)
	}
	waitFor(t, 90*time.Second, "s1 lists the record the survivor held once a quorum is back", func() bool { return lists(0) })
	if !lists(survivor) {
		t.Fatalf("the survivor does not list invocation %s after committing it", id)
	}
}
