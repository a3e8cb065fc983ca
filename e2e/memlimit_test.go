package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var cgroupSeq int // cgroups made by memoryCgroup

// memoryCgroup makes a memory cgroup limited to limit bytes and returns
// a script that runs the nimbus binary inside it with env set (removed
// at the end, once its processes are gone). It skips the test where no
// memory controller can be written (not root, none mounted).
func memoryCgroup(t *testing.T, limit int64, env string) string {
	t.Helper()
	cgroupSeq++
	name := fmt.Sprintf("nimbus-e2e-%s-%d-%d", strings.ToLower(t.Name()), os.Getpid(), cgroupSeq)
	dir, file := filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		dir, file = filepath.Join("/sys/fs/cgroup", name), "memory.max" // the unified hierarchy
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no memory cgroup can be made here: %v", err)
	}
	t.Cleanup(func() { removeCgroupTree(dir) })
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Skipf("no memory limit can be set here: %v", err)
	}
	script := filepath.Join(t.TempDir(), "in-cgroup")
	body := fmt.Sprintf("#!/bin/sh\necho $$ > %s/cgroup.procs || exit 1\n%sexec %s \"$@\"\n", dir, env, nimbusBin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// removeCgroupTree removes cgroup dir and the cgroups below it (a
// server makes its sandboxes' parent there), deepest first.
func removeCgroupTree(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// goMemLimit is the go_gc_gomemlimit_bytes gauge on server 0's /metrics.
func goMemLimit(t *testing.T, c *testCluster) int64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.servers[0].addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := shortHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_gc_gomemlimit_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no go_gc_gomemlimit_bytes in /metrics (%s)", resp.Status)
	return 0
}

// A server in a cgroup with a memory limit keeps its Go heap under nine
// tenths of it (the collector's soft limit), so that it collects more
// often instead of being killed; GOMEMLIMIT set by the operator wins.
func TestAServerKeepsItsHeapUnderItsCgroupsLimit(t *testing.T) {
	parallel(t)
	var limit int64 = 1 << 30
	c := startClusterOf(t, memoryCgroup(t, limit, ""), 1, 0)
	if got, want := goMemLimit(t, c), int64(float64(limit)*0.9); got != want {
		t.Errorf("a server limited to 1 GiB: go_gc_gomemlimit_bytes = %d, want %d", got, want)
	}
	c2 := startClusterOf(t, memoryCgroup(t, limit, "GOMEMLIMIT=300MiB "), 1, 0)
	if got := goMemLimit(t, c2); got != 300<<20 {
		t.Errorf("with GOMEMLIMIT=300MiB: go_gc_gomemlimit_bytes = %d, want %d", got, 300<<20)
	}
}
