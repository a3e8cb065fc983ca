package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lambdaMBPerCPU is the memory size that buys one full vCPU, as on Lambda.
const lambdaMBPerCPU = 1769

// cgroupLimits are what one instance's cgroup enforces.
type cgroupLimits struct {
	MemoryMB int
	Pids     int
}

// cpuShares is the v1 cpu.shares for a memory size: 1024 (one CPU's
// worth under contention) at 1,769 MB, proportionally less or more.
func cpuShares(memoryMB int) int {
	s := 1024 * memoryMB / lambdaMBPerCPU
	if s < 2 {
		s = 2
	}
	return s
}

// cgroupManager creates and removes instance cgroups below a parent of
// Nimbus's own: OWN/nimbus/WORKER in v2, or CONTROLLER/OWN/nimbus/WORKER
// in each v1 controller, where OWN is the worker's own cgroup and WORKER
// names this worker (so that two workers on one host never sweep each
// other's sandboxes). It never writes anywhere else.
type cgroupManager interface {
	Version() int
	Create(id string, lim cgroupLimits) (cgroup, error)
	// Sweep kills and removes instance cgroups left by an earlier worker.
	Sweep() error
	// Remove removes the worker's own (empty) parent cgroups.
	Remove() error
}

// cgroup is one instance's cgroup.
type cgroup interface {
	// Add moves a process into the cgroup.
	Add(pid int) error
	// OOMKilled reports whether the kernel killed a process of this
	// cgroup for exceeding its memory limit.
	OOMKilled() bool
	// Destroy kills every process in the cgroup and removes it.
	Destroy() error
	// SetMemory changes the memory limit (and the CPU share that follows
	// it) of a cgroup in use.
	SetMemory(memoryMB int) error
}

// newCgroupManager picks v2 when the unified hierarchy offers the memory
// and pids controllers to the worker's cgroup, else the v1 controllers.
func newCgroupManager(workerName string) (cgroupManager, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	if m, ok := mounts["cgroup2"]; ok {
		base := filepath.Join(m, own[""])
		avail, _ := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
		fields := strings.Fields(string(avail))
		if contains(fields, "memory") && contains(fields, "pids") {
			if _, err := newCgroupV2(filepath.Join(base, "nimbus")); err != nil {
				return nil, err
			}
			return newCgroupV2(filepath.Join(base, "nimbus", workerName))
		}
	}
	var missing []string
	v1 := &cgroupV1{bases: map[string]string{}}
	for _, c := range []string{"memory", "cpu", "pids"} {
		m, ok := mounts[c]
		if !ok {
			missing = append(missing, c)
			continue
		}
		v1.bases[c] = filepath.Join(m, own[c], "nimbus", workerName)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no cgroup v2 with memory and pids delegated, and no cgroup v1 controller for %s", strings.Join(missing, ", "))
	}
	for c, b := range v1.bases {
		if err := os.MkdirAll(b, 0o755); err != nil {
			return nil, fmt.Errorf("create the %s cgroup %s: %w", c, b, err)
		}
	}
	return v1, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cgroupMounts maps each v1 controller (and "cgroup2") to its mount point.
func cgroupMounts() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if _, seen := out["cgroup2"]; !seen {
				out["cgroup2"] = pf[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				switch opt {
				case "memory", "cpu", "pids", "freezer":
					if _, seen := out[opt]; !seen {
						out[opt] = pf[4]
					}
				}
			}
		}
	}
	return out, nil
}

// ownCgroups maps each controller ("" for v2) to this process's cgroup path.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

func writeFile(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup: write %s to %s: %w", value, path, err)
	}
	return nil
}

// killAndRemove kills every process listed in dir/cgroup.procs until it
// is empty, then removes dir, retrying while the kernel still reaps.
func killAndRemove(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		pids := strings.Fields(string(b))
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		err = os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sweepDir kills and removes every child cgroup of base.
func sweepDir(base string) error {
	entries, err := os.ReadDir(base)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, killAndRemove(filepath.Join(base, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// cgroupV1 places instances in the memory, cpu and pids hierarchies.
type cgroupV1 struct {
	bases map[string]string // controller -> .../nimbus
}

func (m *cgroupV1) Version() int { return 1 }

func (m *cgroupV1) Sweep() error {
	var errs []error
	for _, b := range m.bases {
		errs = append(errs, sweepDir(b))
	}
	return errors.Join(errs...)
}

func (m *cgroupV1) Remove() error {
	var errs []error
	for _, b := range m.bases {
		if err := os.Remove(b); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *cgroupV1) Create(id string, lim cgroupLimits) (cgroup, error) {
	cg := &v1Group{dirs: map[string]string{}}
	for c, b := range m.bases {
		d := filepath.Join(b, id)
		if err := os.Mkdir(d, 0o755); err != nil {
			cg.Destroy()
			return nil, fmt.Errorf("cgroup: create %s: %w", d, err)
		}
		cg.dirs[c] = d
	}
	mem := strconv.FormatInt(int64(lim.MemoryMB)<<20, 10)
	mdir := cg.dirs["memory"]
	err := errors.Join(
		writeFile(filepath.Join(mdir, "memory.limit_in_bytes"), mem),
		writeFile(filepath.Join(cg.dirs["cpu"], "cpu.shares"), strconv.Itoa(cpuShares(lim.MemoryMB))),
		writeFile(filepath.Join(cg.dirs["pids"], "pids.max"), strconv.Itoa(lim.Pids)),
	)
	// Swap off: with swap accounting the combined limit equals the memory
	// limit; without it, swappiness 0 keeps the instance's pages in RAM.
	if _, serr := os.Stat(filepath.Join(mdir, "memory.memsw.limit_in_bytes")); serr == nil {
		err = errors.Join(err, writeFile(filepath.Join(mdir, "memory.memsw.limit_in_bytes"), mem))
	}
	os.WriteFile(filepath.Join(mdir, "memory.swappiness"), []byte("0"), 0o644)
	if err != nil {
		cg.Destroy()
		return nil, err
	}
	return cg, nil
}

type v1Group struct {
	dirs map[string]string
}

func (g *v1Group) Add(pid int) error {
	for _, d := range g.dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (g *v1Group) SetMemory(mb int) error {
	mem := strconv.FormatInt(int64(mb)<<20, 10)
	mdir := g.dirs["memory"]
	// With swap accounting, memsw must stay >= the memory limit: raise it
	// first when growing, lower it last when shrinking.
	memsw := filepath.Join(mdir, "memory.memsw.limit_in_bytes")
	_, serr := os.Stat(memsw)
	hasSw := serr == nil
	if hasSw {
		os.WriteFile(memsw, []byte(mem), 0o644) // succeeds when growing
	}
	if err := writeFile(filepath.Join(mdir, "memory.limit_in_bytes"), mem); err != nil {
		return err
	}
	if hasSw {
		if err := writeFile(memsw, mem); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(g.dirs["cpu"], "cpu.shares"), strconv.Itoa(cpuShares(mb)))
}

func (g *v1Group) OOMKilled() bool {
	b, err := os.ReadFile(filepath.Join(g.dirs["memory"], "memory.oom_control"))
	if err != nil {
		return false
	}
	return eventCount(b, "oom_kill") > 0
}

func (g *v1Group) Destroy() error {
	var errs []error
	// pids first: it lists every process, so killing from it empties the rest.
	if d, ok := g.dirs["pids"]; ok {
		errs = append(errs, killAndRemove(d))
	}
	for c, d := range g.dirs {
		if c != "pids" {
			errs = append(errs, killAndRemove(d))
		}
	}
	return errors.Join(errs...)
}

// eventCount reads "key N" from a cgroup events or control file.
func eventCount(b []byte, key string) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// cgroupV2 places instances below one unified-hierarchy directory.
type cgroupV2 struct {
	base string
}

func newCgroupV2(base string) (*cgroupV2, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("create the cgroup %s: %w", base, err)
	}
	if err := writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory +pids +cpu"); err != nil {
		if err2 := writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory +pids"); err2 != nil {
			return nil, err
		}
	}
	return &cgroupV2{base: base}, nil
}

func (m *cgroupV2) Version() int { return 2 }

func (m *cgroupV2) Sweep() error { return sweepDir(m.base) }

func (m *cgroupV2) Remove() error {
	if err := os.Remove(m.base); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (m *cgroupV2) Create(id string, lim cgroupLimits) (cgroup, error) {
	d := filepath.Join(m.base, id)
	if err := os.Mkdir(d, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: create %s: %w", d, err)
	}
	g := &v2Group{dir: d}
	err := errors.Join(
		writeFile(filepath.Join(d, "memory.max"), strconv.FormatInt(int64(lim.MemoryMB)<<20, 10)),
		writeFile(filepath.Join(d, "pids.max"), strconv.Itoa(lim.Pids)),
	)
	if _, serr := os.Stat(filepath.Join(d, "memory.swap.max")); serr == nil {
		err = errors.Join(err, writeFile(filepath.Join(d, "memory.swap.max"), "0"))
	}
	if _, serr := os.Stat(filepath.Join(d, "cpu.weight")); serr == nil {
		// Map v1 shares [2, 262144] onto v2 weights [1, 10000].
		w := 1 + (cpuShares(lim.MemoryMB)-2)*9999/262142
		err = errors.Join(err, writeFile(filepath.Join(d, "cpu.weight"), strconv.Itoa(w)))
	}
	if err != nil {
		g.Destroy()
		return nil, err
	}
	return g, nil
}

type v2Group struct{ dir string }

func (g *v2Group) Add(pid int) error {
	return writeFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *v2Group) SetMemory(mb int) error {
	if err := writeFile(filepath.Join(g.dir, "memory.max"), strconv.FormatInt(int64(mb)<<20, 10)); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(g.dir, "cpu.weight")); err == nil {
		return writeFile(filepath.Join(g.dir, "cpu.weight"), strconv.Itoa(1+(cpuShares(mb)-2)*9999/262142))
	}
	return nil
}

func (g *v2Group) OOMKilled() bool {
	b, err := os.ReadFile(filepath.Join(g.dir, "memory.events"))
	return err == nil && eventCount(b, "oom_kill") > 0
}

func (g *v2Group) Destroy() error {
	os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0o644)
	return killAndRemove(g.dir)
}
