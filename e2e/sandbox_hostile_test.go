package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// daemonHandler leaves a double-forked daemon behind, in a session of its
// own, writing a heartbeat to /tmp.
const daemonHandler = `
import time
def handler(event, context):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                with open('/tmp/heartbeat', 'w') as f:
                    f.write(str(time.time()))
                time.sleep(0.2)
        os._exit(0)
    os.wait()
    return 'spawned'
`

// TestSandboxOutlivesHostileHandlers attacks the platform from inside a
// sandbox: daemons, signals to everyone, planted symlinks and a broken
// protocol channel.
func TestSandboxOutlivesHostileHandlers(t *testing.T) {
	parallel(t)
	n := sandboxNode(t, "--slots", "4")

	// spawnDaemon invokes fn, which leaves a daemon, and returns the
	// instance's sandbox once the daemon runs beside the instance.
	spawnDaemon := func(t *testing.T, fn string) (string, []int) {
		t.Helper()
		before := sandboxesOf(n)
		if inv := invoke(t, n, fn, nil); inv.errorType != "" || string(inv.body) != `"spawned"` {
			t.Fatalf("%s: %s %s", fn, inv.errorType, inv.body)
		}
		var id string
		var pids []int
		waitFor(t, patience, "the instance and its daemon run", func() bool {
			fresh := newSandboxes(before, sandboxesOf(n))
			for id, pids = range fresh {
			}
			return len(fresh) == 1 && len(pids) >= 2
		})
		return id, pids
	}
	// gone waits until no process of the sandbox remains, zombies included.
	gone := func(t *testing.T, id string, pids []int, why string) {
		t.Helper()
		waitFor(t, patience, "every process of sandbox "+id+" is gone after "+why, func() bool {
			if _, ok := sandboxesOf(n)[id]; ok {
				return false
			}
			for _, pid := range pids {
				if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
					return false
				}
			}
			return true
		})
	}

	t.Run("a double-forked daemon dies when its function is deleted", func(t *testing.T) {
		deployPy(t, n, "daemon", nil, daemonHandler)
		id, pids := spawnDaemon(t, "daemon")
		if r := n.cli("", "rm", "daemon"); r.code != 0 {
			t.Fatalf("nimbus rm: %+v", r)
		}
		gone(t, id, pids, "nimbus rm")
		platformAnswers(t, n)
	})

	t.Run("a double-forked daemon dies when a new revision replaces its instance", func(t *testing.T) {
		deployPy(t, n, "daemon-rev", nil, daemonHandler)
		id, pids := spawnDaemon(t, "daemon-rev")
		deployPy(t, n, "daemon-rev", nil, daemonHandler+"# revision 2\n")
		newID, _ := spawnDaemon(t, "daemon-rev")
		if newID == id {
			t.Fatalf("revision 2 ran in revision 1's sandbox %s", id)
		}
		gone(t, id, pids, "a new revision")
	})

	t.Run("kill(-1, SIGKILL) touches nothing outside its sandbox", func(t *testing.T) {
		deployPy(t, n, "slow", map[string]any{"timeout": "20s"}, `
import time
def handler(event, context):
    time.sleep(event.get('sleep', 0))
    return 'finished'
`)
		deployPy(t, n, "killer", nil, `
import signal, time
def handler(event, context):
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    os.kill(-1, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    return {'child_signal': os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}
`)
		var warm struct{ Calls int }
		observe(t, n, "bystander", nil, &warm)
		invoke(t, n, "slow", nil) // warm, so the next call runs the handler at once
		// The killer is warm too, so that it runs within the slow
		// invocation's sleep also on a busy machine (kill -1 in its own
		// sandbox spares its pid 1, the instance).
		var res struct {
			ChildSignal int `json:"child_signal"`
		}
		observe(t, n, "killer", nil, &res)
		type outcome struct {
			inv invocation
			err error
		}
		slow := make(chan outcome, 1)
		go func() {
			inv, err := tryInvoke(n, "slow", map[string]any{"sleep": 3})
			slow <- outcome{inv, err}
		}()
		waitFor(t, patience, "the slow invocation runs", func() bool {
			var cl client.Cluster
			_, b := apiCall(t, n, "GET", "/v1/cluster", nil)
			return json.Unmarshal(b, &cl) == nil && len(cl.Workers) == 1 && cl.Workers[0].InUse >= 1
		})
		observe(t, n, "killer", nil, &res)
		if res.ChildSignal != 9 {
			t.Errorf("the killer's own child ended with signal %d; want 9 (kill -1 reaches the sandbox's processes)", res.ChildSignal)
		}
		var out outcome
		select {
		case out = <-slow:
		case <-time.After(patience):
			t.Fatal("the slow invocation never returned")
		}
		if out.err != nil || out.inv.errorType != "" || string(out.inv.body) != `"finished"` {
			t.Fatalf("the invocation running beside the killer: %v %s %s", out.err, out.inv.errorType, out.inv.body)
		}
		var after struct{ Calls int }
		observe(t, n, "bystander", nil, &after)
		if after.Calls != warm.Calls+1 {
			t.Errorf("the bystander's warm instance did not survive: calls went from %d to %d", warm.Calls, after.Calls)
		}
		platformAnswers(t, n)
	})

	t.Run("symlinks planted in /tmp are never followed by the worker", func(t *testing.T) {
		canary := filepath.Join(t.TempDir(), "canary.txt")
		if err := os.WriteFile(canary, []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		passwd, _ := os.ReadFile("/etc/passwd")
		token, _ := os.ReadFile(filepath.Join(n.data, "admin.token"))
		deployPy(t, n, "planter", nil, `
def handler(event, context):
    found = sorted(os.listdir('/tmp'))
    canary, data = event['canary'], event['data']
    links = {'passwd': '/etc/passwd', 'canary': canary, 'data': data, 'token': data + '/admin.token',
             'root': '/', 'loop': '/tmp/loop', 'proc1root': '/proc/1/root', 'heartbeat': canary,
             'core': canary, 'stdout': canary, 'log': canary}
    for name, target in links.items():
        if not os.path.lexists('/tmp/' + name):
            os.symlink(target, '/tmp/' + name)
    # The canary's host path, recreated inside: writing through the link
    # reaches the sandbox's copy, not the host's.
    os.makedirs(os.path.dirname(canary), exist_ok=True)
    with open('/tmp/canary', 'w') as f:
        f.write('pwned')
    return {'found': found}
`)
		event := map[string]string{"canary": canary, "data": n.data}
		before := sandboxesOf(n)
		var first, second struct{ Found []string }
		observe(t, n, "planter", event, &first)
		if len(first.Found) != 0 {
			t.Fatalf("a fresh instance's /tmp holds %v", first.Found)
		}
		observe(t, n, "planter", event, &second)
		if len(second.Found) == 0 {
			t.Fatalf("the warm instance lost its planted links")
		}
		platformAnswers(t, n)
		fresh := newSandboxes(before, sandboxesOf(n))
		if r := n.cli("", "rm", "planter"); r.code != 0 {
			t.Fatalf("nimbus rm: %+v", r)
		}
		for id, pids := range fresh {
			gone(t, id, pids, "nimbus rm")
		}
		if b, _ := os.ReadFile(canary); string(b) != "untouched" {
			t.Errorf("the host canary now reads %q", b)
		}
		if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
			t.Errorf("the host's /etc/passwd changed")
		}
		if b, _ := os.ReadFile(filepath.Join(n.data, "admin.token")); !bytes.Equal(b, token) {
			t.Errorf("the node's admin.token changed")
		}
		// The name is free again and a new instance starts clean.
		deployPy(t, n, "planter", nil, `
def handler(event, context):
    return {'found': sorted(os.listdir('/tmp'))}
`)
		observe(t, n, "planter", nil, &first)
		if len(first.Found) != 0 {
			t.Fatalf("a new instance's /tmp holds %v", first.Found)
		}
	})

	deployPy(t, n, "saboteur", nil, `
def handler(event, context):
    how = event.get('how')
    if how == 'close both':
        os.close(3)
        os.close(4)
    elif how == 'garbage':
        os.write(4, b'garbage that is not a frame\n' * 100)
    elif how == 'a frame of non-JSON':
        os.write(4, (16).to_bytes(4, 'big') + b'not json at all!')
    elif how == 'close the request channel':
        os.close(3)
    return {'ok': True}
`)
	for _, c := range []struct {
		name, how string
		mayAnswer bool // the handler's own answer may still get through
	}{
		{"closes both protocol channels", "close both", false},
		{"writes garbage to the response channel", "garbage", false},
		{"writes a frame of non-JSON to the response channel", "a frame of non-JSON", false},
		{"closes the request channel", "close the request channel", true},
	} {
		t.Run("a handler that "+c.name+" crashes only its own instance", func(t *testing.T) {
			inv := invoke(t, n, "saboteur", map[string]string{"how": c.how})
			if inv.errorType != "Sandbox.Crashed" && !(c.mayAnswer && inv.errorType == "") {
				t.Fatalf("got errorType %q, want Sandbox.Crashed; body: %.300s", inv.errorType, inv.body)
			}
			// The next invocation gets a sound instance.
			var res struct{ OK bool }
			if observe(t, n, "saboteur", nil, &res); !res.OK {
				t.Fatal("the saboteur's next invocation did not answer ok")
			}
			platformAnswers(t, n)
		})
	}

	t.Run("nothing of any sandbox remains once nimbus dev stops", func(t *testing.T) {
		deployPy(t, n, "daemon-last", nil, daemonHandler)
		spawnDaemon(t, "daemon-last")
		n.stop()
		waitFor(t, patience, "every sandbox of the node is gone", func() bool { return len(sandboxesOf(n)) == 0 })
	})
}
