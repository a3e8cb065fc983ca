package tuning

import (
	"os"
	"path/filepath"
	"testing"
)

// The memory limit is read where /proc/self/cgroup says the process is,
// in either cgroup version, as the least of its cgroup's and its
// ancestors'; none when every level is unlimited.
func TestCgroupMemoryLimit(t *testing.T) {
	write := func(t *testing.T, root, rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		self  string
		files map[string]string
		want  int64
	}{
		{"v2 in a container", "0::/\n", map[string]string{"memory.max": "2147483648\n"}, 2 << 30},
		{"v2, unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0},
		{"v2, an ancestor's limit is less", "0::/system.slice/nimbus.service\n",
			map[string]string{"system.slice/nimbus.service/memory.max": "max\n", "system.slice/memory.max": "1073741824\n"}, 1 << 30},
		{"v2, its own limit is less", "0::/kubepods/pod1/c1\n",
			map[string]string{"kubepods/pod1/c1/memory.max": "536870912\n", "kubepods/memory.max": "1073741824\n"}, 512 << 20},
		{"v1 memory controller", "12:cpu,cpuacct:/k/c1\n11:memory:/k/c1\n0::/\n",
			map[string]string{"memory/k/c1/memory.limit_in_bytes": "3221225472\n", "memory/memory.limit_in_bytes": "9223372036854771712\n"}, 3 << 30},
		{"v1 seen from a container with the host's path", "11:memory:/docker/abc\n",
			map[string]string{"memory/memory.limit_in_bytes": "1610612736\n"}, 1536 << 20},
		{"v1, unlimited", "11:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"no memory controller", "5:devices:/\n", map[string]string{}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, content := range c.files {
				write(t, root, rel, content)
			}
			if got := cgroupMemoryLimit([]byte(c.self), root); got != c.want {
				t.Errorf("limit = %d, want %d", got, c.want)
			}
		})
	}
}
