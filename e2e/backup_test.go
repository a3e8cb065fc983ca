package e2e

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// A backup saved through a follower while writes go on restores, through
// a follower of a fresh three-server cluster (which sends the CLI to its
// leader), with every function (whose code came with it), key, record
// and fired schedule slot there on every server. A backup of a newer
// format, and a restore by a key that is not an admin's, are refused.
func TestABackupTakenUnderWritesRestoresIntoAFreshCluster(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	dir := t.TempDir()
	l := c.leader()
	c.mustCLI(l, 0, "deploy", writeFunction(t, dir, "kept", "def handler(event, context):\n    return 'kept'\n"))
	c.mustCLI(l, 0, "schedules", "create", "tick", "--function", "kept", "--expression", "@every 1s")
	var before client.Schedule
	waitFor(t, time.Minute, "the schedule fires", func() bool {
		r := c.cli(l, 20*time.Second, "schedules", "get", "tick", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &before) == nil && before.Fires >= 2
	})
	follower := (l + 1) % 3

	// Writes through every server while the backup is taken.
	stop := make(chan struct{})
	done := make(chan []string)
	var made atomic.Int64
	go func() {
		var notes []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- notes
				return
			default:
			}
			note := fmt.Sprintf("during-backup-%d", i)
			if r := c.cli(i%3, 20*time.Second, "keys", "create", "--role", "viewer", "--note", note); r.code == 0 {
				notes = append(notes, note)
				made.Add(1)
			}
		}
	}()
	waitFor(t, time.Minute, "keys are being made", func() bool { return made.Load() >= 2 })
	file := filepath.Join(t.TempDir(), "cluster.snap")
	c.mustCLI(follower, 0, "operator", "snapshot", "save", file)
	close(stop)
	<-done
	var m client.BackupMeta
	if err := json.Unmarshal([]byte(c.mustCLI(l, 0, "operator", "snapshot", "inspect", file, "-o", "json").stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Counts["functions"] != 1 || m.Counts["schedules"] != 1 || m.Counts["keys"] < 3 || len(m.Blobs) != 1 {
		t.Fatalf("the backup holds %+v, %d blobs", m.Counts, len(m.Blobs))
	}

	fresh := startCluster(t, 3, 1)
	fl := fresh.leader()
	ff := (fl + 1) % 3
	fresh.mustCLI(fl, 0, "deploy", writeFunction(t, t.TempDir(), "other", "def handler(event, context):\n    return 1\n"))
	viewer := fresh.mustCLI(fl, 0, "keys", "create", "--role", "viewer", "-o", "json")
	var vk client.Key
	json.Unmarshal([]byte(viewer.stdout), &vk)
	// The key was made through the leader: the follower knows it once it
	// has applied it.
	waitFor(t, time.Minute, "the follower knows the viewer key", func() bool {
		return fresh.cliWithKey(ff, vk.Secret, 20*time.Second, "ls").code == 0
	})
	if r := fresh.cliWithKey(ff, vk.Secret, time.Minute, "operator", "snapshot", "restore", file); r.code != 3 || !strings.Contains(r.stderr, "403") {
		t.Errorf("a restore by a viewer key: %+v", r)
	}
	newer := filepath.Join(t.TempDir(), "newer.snap")
	writeBackupOfFormat(t, file, newer, 99)
	if r := fresh.cli(ff, time.Minute, "operator", "snapshot", "restore", newer); r.code != 3 || !strings.Contains(r.stderr, "format 99 is unknown") {
		t.Errorf("a restore of a newer format: %+v", r)
	}
	if r := fresh.cli(fl, time.Minute, "invoke", "other"); r.code != 0 {
		t.Fatalf("a refused restore changed the cluster: %+v", r)
	}
	if out := fresh.mustCLI(ff, 0, "operator", "snapshot", "restore", file).stdout; !strings.Contains(out, "the cluster's state is the backup's") {
		t.Fatalf("restore through a follower: %s", out)
	}

	// From here on, the keys are the backup's: the old cluster's.
	fresh.token = c.token
	for i := range fresh.servers {
		waitFor(t, time.Minute, fresh.servers[i].id+" serves the restored state", func() bool {
			r := fresh.cli(i, 20*time.Second, "invoke", "kept")
			return r.code == 0 && strings.Contains(r.stdout, "kept")
		})
		if r := fresh.cli(i, 20*time.Second, "get", "other"); r.code == 0 {
			t.Errorf("%s still has a function the backup did not hold", fresh.servers[i].id)
		}
		var sc client.Schedule
		r := fresh.cli(i, 20*time.Second, "schedules", "get", "tick", "-o", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sc) != nil || sc.LastSlot.Before(before.LastSlot) {
			t.Errorf("%s: the schedule after the restore: %+v (before: up to %v)", fresh.servers[i].id, r, before.LastSlot)
		}
	}
	if r := fresh.cli(fresh.leader(), 20*time.Second, "keys", "ls"); r.code != 0 || !strings.Contains(r.stdout, "during-backup-0") || !strings.Contains(r.stdout, "during-backup-1") {
		t.Errorf("the keys made before the backup: %+v", r)
	}
	// A deploy after the restore is replicated among the new servers.
	fresh.mustCLI(fresh.leader(), 0, "deploy", writeFunction(t, t.TempDir(), "after", "def handler(event, context):\n    return 'after'\n"))
}

// writeBackupOfFormat copies backup src to dst with its description's
// format set to format.
func writeBackupOfFormat(t *testing.T, src, dst string, format int) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gz, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gw := gzip.NewWriter(out)
	tw := tar.NewWriter(gw)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == "nimbus-backup.json" {
			var meta map[string]any
			json.Unmarshal(b, &meta)
			meta["format"] = format
			b, _ = json.Marshal(meta)
			h.Size = int64(len(b))
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	gw.Close()
}
