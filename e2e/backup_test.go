package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

func scheduleOf(t *testing.T, n *devNode, name string) client.Schedule {
	t.Helper()
	var sc client.Schedule
	if err := json.Unmarshal([]byte(n.mustCLI(0, "schedules", "get", name, "-o", "json").stdout), &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

// A backup holds the whole state and every blob it names; it restores
// into a fresh node, where the functions run (their code came with it),
// versions, aliases, layers, keys and records are back, and a schedule
// goes on from the slot it had fired. Scheduled backups are saved and
// pruned on the leader. A corrupt backup is refused and changes nothing.
func TestABackupRestoresIntoAFreshNodeWithEverythingItHeld(t *testing.T) {
	parallel(t)
	backups := filepath.Join(t.TempDir(), "backups")
	n := startDev(t, t.TempDir(), "--backup-every", "1s", "--backup-keep", "2", "--backup-dir", backups)
	dir := t.TempDir()
	n.mustCLI(0, "deploy", writeFunction(t, dir, "shop", "RELEASE = 'one'\n"+versionedHandler))
	n.mustCLI(0, "publish", "shop")
	n.mustCLI(0, "aliases", "create", "shop", "live", "--version", "1")
	n.mustCLI(0, "layers", "publish", "common", writeTree(t, map[string]string{"python/common.py": "WHO = 'common'\n"}))
	n.mustCLI(0, "deploy", writeFunction(t, dir, "uses", "import common\n\ndef handler(event, context):\n    return common.WHO\n"), "--layer", "common:1")
	dev := n.newKey(t, "--role", "developer")
	n.mustCLI(0, "schedules", "create", "tick", "--function", "shop:live", "--expression", "@every 1s")
	status, id := n.asyncInvoke("shop", []byte(`{}`))
	if status != 202 {
		t.Fatalf("async invoke: %d", status)
	}
	n.waitRecord(id, time.Minute, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
	waitFor(t, time.Minute, "the schedule fires twice", func() bool { return scheduleOf(t, n, "tick").Fires >= 2 })

	file := filepath.Join(t.TempDir(), "cluster.snap")
	if out := n.mustCLI(0, "operator", "snapshot", "save", file).stdout; !strings.Contains(out, "checked") {
		t.Fatalf("save: %s", out)
	}
	fired := scheduleOf(t, n, "tick")
	inspect := n.mustCLI(0, "operator", "snapshot", "inspect", file).stdout
	for _, want := range []string{"functions:       2", "versions:        1", "aliases:         1", "layers:          1", "schedules:       1", "checksums:       all match"} {
		if !strings.Contains(inspect, want) {
			t.Errorf("inspect does not say %q:\n%s", want, inspect)
		}
	}

	// Scheduled backups: saved by the leader, the newest two kept, each
	// one a backup that checks out.
	waitFor(t, time.Minute, "three scheduled backups have been made and two kept", func() bool {
		list, _ := filepath.Glob(filepath.Join(backups, "nimbus-*.snap"))
		return len(list) == 2 && !strings.Contains(n.out.String(), "scheduled backup failed")
	})
	list, _ := filepath.Glob(filepath.Join(backups, "nimbus-*.snap"))
	for _, f := range list {
		n.mustCLI(0, "operator", "snapshot", "inspect", f)
	}

	// A fresh node: a corrupt backup is refused, whoever checks it, and
	// changes nothing.
	fresh := startDev(t, t.TempDir())
	fresh.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "mine", "def handler(event, context):\n    return 'mine'\n"))
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.snap")
	os.WriteFile(cut, raw[:len(raw)*2/3], 0o600)
	if r := fresh.cli("", "operator", "snapshot", "restore", cut); r.code != 3 || !strings.Contains(r.stderr, "corrupt") {
		t.Errorf("restoring a cut backup: %+v", r)
	}
	if status, _, body := fresh.do("POST", "/v1/operator/snapshot", "application/gzip", strings.NewReader(string(raw[:len(raw)/2]))); status != 400 || !strings.Contains(string(body), "corrupt") {
		t.Errorf("a cut backup sent to the API: %d %s", status, body)
	}
	if r := fresh.cliWithToken(dev.Secret, "operator", "snapshot", "save", filepath.Join(t.TempDir(), "x")); r.code != 3 {
		t.Errorf("a key of another cluster saved a backup: %+v", r)
	}
	if out := fresh.mustCLI(0, "invoke", "mine").stdout; !strings.Contains(out, "mine") {
		t.Fatalf("a refused restore changed the node: %s", out)
	}

	// The restore: the backup's state, keys included.
	if out := fresh.mustCLI(0, "operator", "snapshot", "restore", file).stdout; !strings.Contains(out, "the cluster's state is the backup's") {
		t.Fatalf("restore: %s", out)
	}
	fresh.token = n.token
	if r := fresh.cli("", "invoke", "mine"); r.code == 0 {
		t.Errorf("a function the backup did not hold survived the restore: %+v", r)
	}
	if rel, _ := invokeRelease(t, fresh, "shop:live"); rel != "one" {
		t.Errorf("shop:live after the restore ran %q", rel)
	}
	if out := fresh.mustCLI(0, "invoke", "uses").stdout; !strings.Contains(out, "common") {
		t.Errorf("the function that mounts a layer: %s", out)
	}
	if rec, ok := fresh.record(id); !ok || rec.Status != client.StatusSuccess {
		t.Errorf("the async record after the restore: %+v (found %v)", rec, ok)
	}
	if r := fresh.cliWithToken(dev.Secret, "ls"); r.code != 0 || !strings.Contains(r.stdout, "shop") {
		t.Errorf("the developer key after the restore: %+v", r)
	}
	after := scheduleOf(t, fresh, "tick")
	if after.LastSlot.Before(fired.LastSlot) || after.Fires < fired.Fires {
		t.Errorf("the schedule went back: fired %d up to %v before, %d up to %v after", fired.Fires, fired.LastSlot, after.Fires, after.LastSlot)
	}
	waitFor(t, time.Minute, "the schedule fires again after the restore", func() bool {
		return scheduleOf(t, fresh, "tick").LastSlot.After(after.LastSlot)
	})
}

// invokeRelease invokes ref and returns the release and version its
// handler (versionedHandler) reports.
func invokeRelease(t *testing.T, n *devNode, ref string) (string, string) {
	t.Helper()
	r := n.mustCLI(0, "invoke", ref)
	var out struct{ Release, Version string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("invoke %s: %v\n%s", ref, err, r.stdout)
	}
	return out.Release, out.Version
}

// cliWithToken runs the CLI against n with another key.
func (n *devNode) cliWithToken(token string, args ...string) result {
	n.t.Helper()
	c := *n
	c.token = token
	return c.cli("", args...)
}
