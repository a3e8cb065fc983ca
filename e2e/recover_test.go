package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// argAfter is the value of flag in args.
func argAfter(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// When two of three servers are lost for good, the survivor cannot
// elect itself and takes no writes; `nimbus operator raft recover` on
// its stopped data makes it a cluster of one that serves what it had and
// takes writes again (its code packages replicated to itself alone). It
// is refused on a running server, while the others still have a quorum,
// and for a server the cluster never had.
func TestRaftRecoverBringsASurvivorBackAsAClusterOfItsOwn(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	dir := t.TempDir()
	l := c.leader()
	c.mustCLI(l, 0, "deploy", writeFunction(t, dir, "kept", "def handler(event, context):\n    return 'kept'\n"))
	survivor := (l + 1) % 3
	waitFor(t, time.Minute, "the survivor has the function", func() bool {
		_, ok := c.getFunction(survivor, "kept")
		return ok
	})
	s := c.servers[survivor]
	data := filepath.Join(c.dir, s.id)
	self := s.id + "=" + argAfter(s.args, "--raft")

	// Refused while the server runs, and while the others (a majority)
	// still answer: nothing is changed.
	if r := c.runBounded(time.Minute, nil, c.dir, "operator", "raft", "recover", "--data", data, "--server", self); r.code != 3 || !strings.Contains(r.stderr, "running") {
		t.Errorf("recover of a running server: %+v", r)
	}
	c.terminate(s)
	if r := c.runBounded(time.Minute, nil, c.dir, "operator", "raft", "recover", "--data", data, "--server", self); r.code != 3 || !strings.Contains(r.stderr, "still has a quorum") {
		t.Errorf("recover while the others have a quorum: %+v", r)
	}
	c.restartServer(survivor)
	waitFor(t, time.Minute, "the survivor is back in the cluster", func() bool {
		_, ok := c.getFunction(survivor, "kept")
		return ok
	})

	for i := range c.servers {
		if i != survivor {
			c.killServer(i)
		}
	}
	if r := c.cli(survivor, 30*time.Second, "deploy", writeFunction(t, dir, "lost", "def handler(event, context):\n    return 1\n")); r.code == 0 {
		t.Fatalf("a deploy without a quorum succeeded: %+v", r)
	}
	c.killServer(survivor)

	if r := c.runBounded(time.Minute, nil, c.dir, "operator", "raft", "recover", "--data", data, "--server", "nonsense"); r.code != 2 {
		t.Errorf("recover with a malformed server: %+v", r)
	}
	if r := c.runBounded(time.Minute, nil, c.dir, "operator", "raft", "recover", "--data", data, "--server", "s9=127.0.0.1:1"); r.code != 3 || !strings.Contains(r.stderr, "not in this server's last configuration") {
		t.Errorf("recover naming a server the cluster never had: %+v", r)
	}
	r := c.runBounded(time.Minute, nil, c.dir, "operator", "raft", "recover", "--data", data, "--server", self)
	if r.code != 0 || !strings.Contains(r.stdout, "recovered") {
		t.Fatalf("recover: %+v", r)
	}
	c.restartServer(survivor)
	waitFor(t, time.Minute, "the survivor leads a cluster of its own", func() bool { return c.leaderAmong([]int{survivor}) == survivor })
	waitFor(t, time.Minute, "the function it had runs", func() bool {
		r := c.cli(survivor, 30*time.Second, "invoke", "kept")
		return r.code == 0 && strings.Contains(r.stdout, "kept")
	})
	c.mustCLI(survivor, 0, "deploy", writeFunction(t, dir, "after", "def handler(event, context):\n    return 'after'\n"))
	if out := c.mustCLI(survivor, 0, "invoke", "after").stdout; !strings.Contains(out, "after") {
		t.Errorf("a function deployed after the recovery: %s", out)
	}
}
