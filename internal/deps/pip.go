package deps

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"nimbus/internal/runtime/python"
)

// sharedWheels is where Debian keeps the wheels its ensurepip installs
// (package python3-pip-whl).
const sharedWheels = "/usr/share/python-wheels"

// pipFor is the pip wheel builds for rt run: the builder's PipWheel, or
// the one rt's own ensurepip bundles, or the newest in sharedWheels.
func (b *Builder) pipFor(rt python.Runtime) string {
	if b.PipWheel != "" {
		return b.PipWheel
	}
	b.once.Do(func() {
		b.pips = map[string]string{}
		for _, r := range b.Runtimes {
			b.pips[r.Name] = FindPip(r)
		}
	})
	return b.pips[rt.Name]
}

// FindPip finds a pip wheel for rt: its ensurepip's bundled wheel, else
// the newest of the host's shared wheels; "" when there is none.
func FindPip(rt python.Runtime) string {
	short := rt.Name
	if v := strings.Split(rt.Version, "."); len(v) >= 2 {
		short = "python" + v[0] + "." + v[1]
	}
	for _, pattern := range []string{
		filepath.Join(rt.Prefix, "lib", short, "ensurepip", "_bundled", "pip-*.whl"),
		filepath.Join(sharedWheels, "pip-*.whl"),
	} {
		if w := newest(pattern); w != "" {
			return w
		}
	}
	return ""
}

// newest is the file matching pattern (pip-VERSION-TAGS.whl) with the
// highest version.
func newest(pattern string) string {
	m, _ := filepath.Glob(pattern)
	sort.Slice(m, func(i, j int) bool { return versionLess(wheelVersion(m[i]), wheelVersion(m[j])) })
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

func wheelVersion(path string) string {
	parts := strings.SplitN(filepath.Base(path), "-", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}
