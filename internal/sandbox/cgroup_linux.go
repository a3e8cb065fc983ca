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
	"sync"
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

// cfsPeriodUS is the CFS bandwidth period of every instance cgroup: the
// quota is refilled every 100 ms (the kernel's default period).
const cfsPeriodUS = 100_000

// cpuQuotaUS is the CFS quota per cfsPeriodUS for a memory size, as on
// Lambda: a full CPU (the whole period) at 1,769 MB, proportionally less
// or more (more than one CPU for a process with threads or children),
// never under the kernel's minimum of 1 ms.
func cpuQuotaUS(memoryMB int) int {
	q := cfsPeriodUS * memoryMB / lambdaMBPerCPU
	if q < 1000 {
		q = 1000
	}
	return q
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
	// SetMemory changes the memory limit (and the CPU share, and the CPU
	// cap once set, that follow it) of a cgroup in use.
	SetMemory(memoryMB int) error
	// CapCPU sets the CPU cap (CFS bandwidth) that follows the memory
	// limit; until then the cgroup has only its CPU share.
	CapCPU() error
	// Freeze stops every process of the cgroup where the kernel can (v1
	// freezer, v2 cgroup.freeze); Thaw lets them run again. Both are
	// no-ops without a freezer (CanFreeze false).
	Freeze() error
	Thaw() error
	CanFreeze() bool
	// Usage reads what the cgroup holds now.
	Usage() (Usage, error)
	// PeakMemory is the most memory the cgroup has used, in bytes (0
	// where the kernel does not say).
	PeakMemory() int64
	// Memory is the memory charged to the cgroup now, in bytes (0 where
	// the kernel does not say).
	Memory() int64
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
	// freezer (to stop idle instances) and cpuacct (CPU time used) are
	// used where mounted; cpuacct is often mounted with cpu, whose
	// directory then serves both.
	for _, c := range []string{"freezer", "cpuacct"} {
		if m, ok := mounts[c]; ok && m != mounts["cpu"] {
			v1.bases[c] = filepath.Join(m, own[c], "nimbus", workerName)
		}
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
				case "memory", "cpu", "cpuacct", "pids", "freezer":
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
	// A process of a frozen v1 cgroup takes no signal, SIGKILL included,
	// until it is thawed (v2's kill reaches frozen processes, but its
	// cgroup must not stay frozen either).
	thawDir(dir)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		killPids(b)
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

// killAll sends SIGKILL to every process listed in dir/cgroup.procs.
func killAll(dir string) {
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		killPids(b)
	}
}

// killPids sends SIGKILL to each pid of a cgroup.procs listing.
func killPids(procs []byte) {
	for _, p := range strings.Fields(string(procs)) {
		if pid, err := strconv.Atoi(p); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// thawDir thaws dir if it is a frozen v1 freezer or v2 cgroup. It writes
// only files the kernel made: nothing is created.
func thawDir(dir string) {
	for name, v := range map[string]string{"freezer.state": "THAWED", "cgroup.freeze": "0"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		f.WriteString(v)
		f.Close()
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
	// The freezer first: removing it thaws (and kills) what an earlier
	// worker left frozen, which no other controller's kill would reach.
	if b, ok := m.bases["freezer"]; ok {
		errs = append(errs, sweepDir(b))
	}
	for c, b := range m.bases {
		if c != "freezer" {
			errs = append(errs, sweepDir(b))
		}
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
		writeFile(filepath.Join(cg.dirs["cpu"], "cpu.cfs_period_us"), strconv.Itoa(cfsPeriodUS)),
		writeFile(filepath.Join(cg.dirs["pids"], "pids.max"), strconv.Itoa(lim.Pids)),
	)
	cg.memoryMB = lim.MemoryMB
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
	dirs     map[string]string
	memoryMB int
	capped   bool // CapCPU was called: the quota follows memoryMB
	cpu      cpuReader
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
	g.memoryMB = mb
	if err := writeFile(filepath.Join(g.dirs["cpu"], "cpu.shares"), strconv.Itoa(cpuShares(mb))); err != nil {
		return err
	}
	if g.capped {
		return g.CapCPU()
	}
	return nil
}

func (g *v1Group) CapCPU() error {
	g.capped = true
	return setQuota(filepath.Join(g.dirs["cpu"], "cpu.cfs_burst_us"), func() error {
		return writeFile(filepath.Join(g.dirs["cpu"], "cpu.cfs_quota_us"), strconv.Itoa(cpuQuotaUS(g.memoryMB)))
	}, cpuQuotaUS(g.memoryMB))
}

// setQuota sets a CFS quota (by write) and, where the kernel has CFS
// burst (5.14 and later: burstFile exists), a burst of one quota: a
// cgroup may then spend in one period what it left unused before, up to
// a period's quota, so that a function whose use averages under its cap
// is not throttled for how its invocations fall into periods. The
// average stays capped. The kernel refuses a burst above the quota, so
// the burst goes to 0 first, and up once the quota is set.
func setQuota(burstFile string, write func() error, quotaUS int) error {
	f, err := os.OpenFile(burstFile, os.O_WRONLY, 0)
	if err != nil {
		return write() // no CFS burst here
	}
	f.Close()
	if err := writeFile(burstFile, "0"); err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	return writeFile(burstFile, strconv.Itoa(quotaUS))
}

func (g *v1Group) CanFreeze() bool { _, ok := g.dirs["freezer"]; return ok }

func (g *v1Group) Freeze() error {
	if d, ok := g.dirs["freezer"]; ok {
		return writeFile(filepath.Join(d, "freezer.state"), "FROZEN")
	}
	return nil
}

func (g *v1Group) Thaw() error {
	if d, ok := g.dirs["freezer"]; ok {
		return writeFile(filepath.Join(d, "freezer.state"), "THAWED")
	}
	return nil
}

func (g *v1Group) Usage() (Usage, error) {
	u, err := readUsage(g.dirs["pids"])
	d, ok := g.dirs["cpuacct"]
	if !ok {
		d = g.dirs["cpu"] // cpuacct mounted with cpu
	}
	if b := g.cpu.read(filepath.Join(d, "cpuacct.usage")); b != nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		u.CPU = time.Duration(n)
	}
	return u, err
}

// cpuReader reads a cgroup's CPU figure, the file kept open between
// reads (one pread after every invocation, not an open, read and close).
// Destroy may close it while the instance's goroutine reads.
type cpuReader struct {
	mu  sync.Mutex
	f   *os.File
	buf [512]byte
}

// read returns a copy of the file's content (nil if it cannot be read).
func (r *cpuReader) read(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		r.f = f
	}
	n, err := r.f.ReadAt(r.buf[:], 0)
	if n == 0 && err != nil {
		return nil
	}
	return append([]byte(nil), r.buf[:n]...)
}

func (r *cpuReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

func (g *v1Group) PeakMemory() int64 {
	return readInt(filepath.Join(g.dirs["memory"], "memory.max_usage_in_bytes"))
}

func (g *v1Group) Memory() int64 {
	return readInt(filepath.Join(g.dirs["memory"], "memory.usage_in_bytes"))
}

func (g *v1Group) OOMKilled() bool {
	b, err := os.ReadFile(filepath.Join(g.dirs["memory"], "memory.oom_control"))
	if err != nil {
		return false
	}
	return eventCount(b, "oom_kill") > 0
}

func (g *v1Group) Destroy() error {
	g.cpu.close()
	var errs []error
	// A frozen process takes no signal, SIGKILL included, until thawed:
	// kill (pending), then thaw, so that nothing runs user code again.
	if d, ok := g.dirs["pids"]; ok {
		killAll(d)
	}
	g.Thaw()
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

// readUsage reads the processes and pids.events of a cgroup directory
// that has the pids controller (v1's pids directory, or a v2 cgroup).
func readUsage(dir string) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return u, err
	}
	u.Procs = bytes.Count(b, []byte{'\n'})
	if ev, err := os.ReadFile(filepath.Join(dir, "pids.events")); err == nil {
		u.PidsLimitHits = eventCount(ev, "max")
	}
	return u, nil
}

// readInt reads a cgroup file holding one number, 0 if it cannot.
func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
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
	if _, serr := os.Stat(filepath.Join(d, "cgroup.freeze")); serr == nil {
		g.freezable = true
	}
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
	g.memoryMB = lim.MemoryMB
	if err != nil {
		g.Destroy()
		return nil, err
	}
	return g, nil
}

type v2Group struct {
	dir       string
	freezable bool // the kernel has cgroup.freeze (5.2 and later)
	memoryMB  int
	capped    bool // CapCPU was called: cpu.max follows memoryMB
	cpu       cpuReader
}

func (g *v2Group) Add(pid int) error {
	return writeFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *v2Group) SetMemory(mb int) error {
	if err := writeFile(filepath.Join(g.dir, "memory.max"), strconv.FormatInt(int64(mb)<<20, 10)); err != nil {
		return err
	}
	g.memoryMB = mb
	if _, err := os.Stat(filepath.Join(g.dir, "cpu.weight")); err == nil {
		if err := writeFile(filepath.Join(g.dir, "cpu.weight"), strconv.Itoa(1+(cpuShares(mb)-2)*9999/262142)); err != nil {
			return err
		}
	}
	if g.capped {
		return g.CapCPU()
	}
	return nil
}

// CapCPU writes cpu.max where the cpu controller is enabled (it is not
// on hosts that do not delegate it; the cgroup then has no cap).
func (g *v2Group) CapCPU() error {
	g.capped = true
	if _, err := os.Stat(filepath.Join(g.dir, "cpu.max")); err != nil {
		return nil
	}
	return setQuota(filepath.Join(g.dir, "cpu.max.burst"), func() error {
		return writeFile(filepath.Join(g.dir, "cpu.max"), strconv.Itoa(cpuQuotaUS(g.memoryMB))+" "+strconv.Itoa(cfsPeriodUS))
	}, cpuQuotaUS(g.memoryMB))
}

func (g *v2Group) CanFreeze() bool { return g.freezable }

func (g *v2Group) Freeze() error {
	if !g.CanFreeze() {
		return nil
	}
	return writeFile(filepath.Join(g.dir, "cgroup.freeze"), "1")
}

func (g *v2Group) Thaw() error {
	if !g.CanFreeze() {
		return nil
	}
	return writeFile(filepath.Join(g.dir, "cgroup.freeze"), "0")
}

func (g *v2Group) Usage() (Usage, error) {
	u, err := readUsage(g.dir)
	if b := g.cpu.read(filepath.Join(g.dir, "cpu.stat")); b != nil {
		u.CPU = time.Duration(eventCount(b, "usage_usec")) * time.Microsecond
	}
	return u, err
}

func (g *v2Group) PeakMemory() int64 { return readInt(filepath.Join(g.dir, "memory.peak")) }

func (g *v2Group) Memory() int64 { return readInt(filepath.Join(g.dir, "memory.current")) }

func (g *v2Group) OOMKilled() bool {
	b, err := os.ReadFile(filepath.Join(g.dir, "memory.events"))
	return err == nil && eventCount(b, "oom_kill") > 0
}

func (g *v2Group) Destroy() error {
	g.cpu.close()
	os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0o644)
	return killAndRemove(g.dir)
}
