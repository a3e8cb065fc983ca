package tuning

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of its cgroup's memory limit a server's
// Go heap may use before the collector works harder to stay under it:
// the rest is for what Go does not count (the mapped log store's pages,
// the kernel's buffers charged to the cgroup).
const memoryLimitShare = 0.9

// LimitHeapToCgroup sets the Go runtime's soft memory limit to nine
// tenths of the memory limit of the cgroup this process runs in (a
// container's, a systemd unit's MemoryMax), the least of its own and its
// ancestors', and returns it; 0 when there is none, or when GOMEMLIMIT is
// set (that one wins). A server's heap grows to twice its live state
// between collections (GOGC=100); near the limit the collector runs
// more often instead of the kernel killing the server. Only for a
// process whose cgroup holds little besides it: not a node that runs
// instances, whose sandboxes' cgroups sit below its own and hold most
// of its memory (a server's dependency builds do too, for a while).
func LimitHeapToCgroup() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	limit := cgroupMemoryLimit(self, "/sys/fs/cgroup")
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit is the memory limit in bytes that applies to the
// cgroup /proc/self/cgroup (self) names, under the cgroup file systems
// mounted at root: v2's unified hierarchy (memory.max) or v1's memory
// controller (memory.limit_in_bytes); the least of the cgroup's and its
// ancestors' that exist, 0 for none.
func cgroupMemoryLimit(self []byte, root string) int64 {
	var dir, file string
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			if dir == "" { // v1's memory controller wins where both are mounted
				dir, file = root, "memory.max"
				if p := parts[2]; p != "" {
					dir = filepath.Join(root, p)
				}
			}
		case hasController(parts[1], "memory"):
			dir, file = filepath.Join(root, "memory", parts[2]), "memory.limit_in_bytes"
		}
	}
	if dir == "" {
		return 0
	}
	var least int64
	// The cgroup's own directory and its ancestors up to the mount; a
	// container that sees its host's cgroup path has its own cgroup at
	// the mount's root, which this also reads.
	top := root
	if file == "memory.limit_in_bytes" {
		top = filepath.Join(root, "memory")
	}
	for d := dir; ; d = path.Dir(d) {
		if n := readLimit(filepath.Join(d, file)); n > 0 && (least == 0 || n < least) {
			least = n
		}
		if d == top || !strings.HasPrefix(d, top) {
			break
		}
	}
	return least
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit reads a memory limit file: bytes, or 0 for none ("max", v1's
// "unlimited" of nearly 2^63, or no file).
func readLimit(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}
