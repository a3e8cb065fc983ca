package benchmark

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// instanceUIDBase is the first host uid the sandbox runs instances as
// (internal/sandbox); processes at or above it are sandboxed instances.
const instanceUIDBase = 1_000_000

// proc is what idleInstancePSS needs of one /proc/<pid>.
type proc struct {
	pid, ppid, uid int
	start          uint64 // clock ticks since boot
	cmdline        string // NULs as spaces
}

// idleInstancePSS finds the newest instance process (a process whose real
// uid is at least instanceUIDBase, or whose command line names the
// nimbus-bootstrap) that descends from root (any process when root is 0),
// and returns it and its proportional set size in kB from
// /proc/<pid>/smaps_rollup. Called right after the warm phase, the newest
// instance is the no-op function's, idle.
func idleInstancePSS(root int) (proc, int64, error) {
	procs := map[int]proc{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return proc{}, 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			procs[pid] = p
		}
	}
	var best *proc
	for _, p := range procs {
		if p.uid < instanceUIDBase && !strings.Contains(p.cmdline, "nimbus-bootstrap") {
			continue
		}
		if root != 0 && !descends(procs, p.pid, root) {
			continue
		}
		if best == nil || p.start > best.start || (p.start == best.start && p.pid > best.pid) {
			best = &p
		}
	}
	if best == nil {
		return proc{}, 0, errors.New("no instance process found on this machine")
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(best.pid), "smaps_rollup"))
	if err != nil {
		return *best, 0, err
	}
	kb, err := parsePSS(b)
	return *best, kb, err
}

// descends reports whether pid is root or one of its descendants.
func descends(procs map[int]proc, pid, root int) bool {
	for range 64 {
		if pid == root {
			return true
		}
		p, ok := procs[pid]
		if !ok || p.ppid == 0 {
			return false
		}
		pid = p.ppid
	}
	return false
}

func readProc(pid int) (proc, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	p := proc{pid: pid}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return p, err
	}
	if p.uid, p.ppid, err = parseStatus(status); err != nil {
		return p, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, err
	}
	if p.start, err = parseStartTime(stat); err != nil {
		return p, err
	}
	cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	p.cmdline = string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
	return p, nil
}

// parseStatus returns the real uid and the parent pid of a
// /proc/<pid>/status.
func parseStatus(b []byte) (uid, ppid int, err error) {
	var haveUID, havePPid bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Uid":
			uid, err = strconv.Atoi(f[0])
			haveUID = err == nil
		case "PPid":
			ppid, err = strconv.Atoi(f[0])
			havePPid = err == nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("status: %s: %w", k, err)
		}
	}
	if !haveUID || !havePPid {
		return 0, 0, errors.New("status: no Uid or PPid line")
	}
	return uid, ppid, nil
}

// parseStartTime returns field 22 (starttime, clock ticks after boot) of
// a /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("stat: too few fields")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// parsePSS returns the Pss line of a /proc/<pid>/smaps_rollup, in kB.
func parsePSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "Pss" {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("smaps_rollup: malformed Pss line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("smaps_rollup: no Pss line")
}
