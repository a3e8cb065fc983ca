// Package python owns the Python runtimes a worker can run handlers with:
// discovering interpreters, the embedded bootstrap that hosts a Lambda-style
// handler inside an interpreter, and Instance, one running interpreter
// process serving invocations one at a time over a framed pipe protocol.
//
// Usage:
//
//	rts, _ := python.Discover()
//	rt, _ := python.Pick(rts, "python3.11")
//	boot, _ := python.WriteBootstrap(dataDir)
//	inst, _ := python.Start(ctx, python.InstanceConfig{Runtime: rt, Bootstrap: boot, ...})
//	defer inst.Close()
//	resp, _ := inst.Invoke(ctx, python.Request{RequestID: id, Payload: event, Timeout: 3 * time.Second})
package python

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnknownRuntime is returned (wrapped) by Pick for a name no discovered
// runtime has.
var ErrUnknownRuntime = errors.New("python: unknown runtime")

// MinVersion is the oldest Python the bootstrap supports; older
// interpreters are not reported by Discover.
var minVersion = [2]int{3, 8}

// Runtime is one usable Python interpreter, or a runtime that runs a
// program of its own beside one (Program).
type Runtime struct {
	Name       string // "python3.11"
	Executable string // the real interpreter binary (symlinks and shims resolved)
	Prefix     string // sys.base_prefix, its installation prefix
	Version    string // "3.11.2"
	// Program, when set, is a program (an absolute host path) that
	// instances run, as "Program ProgramArg", instead of the interpreter
	// with the bootstrap: it speaks the same instance protocol on fds 3
	// and 4 and hosts the function its own way (the provided runtime's
	// Runtime API server, internal/runtime/provided), keeping one child
	// process of its own (which Processes Left does not count). The
	// sandbox mounts Program read-only under /var/runtime, and the
	// interpreter's installation as for Python, reachable as
	// /usr/bin/python3.
	Program    string
	ProgramArg string
}

var candidateName = regexp.MustCompile(`^python3(\.[0-9]+)?$`)

// probeScript prints what Discover needs; run with -I -S it starts fast and
// sees nothing of the environment.
const probeScript = `import sys,json;print(json.dumps([sys.executable,sys.base_prefix,"%d.%d.%d"%sys.version_info[:3]]))`

// Discover finds the Python 3 interpreters this machine can run: python3
// and python3.N in the PATH directories, /usr/bin and /usr/local/bin, the
// version directories of a pyenv whose shims are on PATH (instead of the
// shims), and extra (each a directory to scan or an interpreter path).
// Each candidate is run once to resolve it to the real binary;
// candidates that do not run are dropped. The result has one Runtime per Name, newest version
// first; for a name found more than once /usr/bin's wins, then
// /usr/local/bin's, then the higher patch version. It errors only when no
// runtime is found.
func Discover(extra ...string) ([]Runtime, error) {
	cands := candidates(filepath.SplitList(os.Getenv("PATH")), extra)
	found := make([]*Runtime, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rt, err := probe(c); err == nil {
				found[i] = &rt
			}
		}()
	}
	wg.Wait()

	byName := map[string]Runtime{}
	for _, rt := range found {
		if rt == nil {
			continue
		}
		if cur, ok := byName[rt.Name]; !ok || better(*rt, cur) {
			byName[rt.Name] = *rt
		}
	}
	rts := make([]Runtime, 0, len(byName))
	for _, rt := range byName {
		rts = append(rts, rt)
	}
	sort.Slice(rts, func(a, b int) bool {
		if c := compareVersions(rts[a].Version, rts[b].Version); c != 0 {
			return c > 0
		}
		return rts[a].Name < rts[b].Name
	})
	if len(rts) == 0 {
		return nil, errors.New("python: no Python 3 interpreter found")
	}
	return rts, nil
}

// Pick returns the runtime called name, or the newest for "". An unknown
// name gives an error wrapping ErrUnknownRuntime that lists the available
// names.
func Pick(rts []Runtime, name string) (Runtime, error) {
	if name == "" && len(rts) > 0 {
		return rts[0], nil
	}
	names := make([]string, 0, len(rts))
	for _, rt := range rts {
		if rt.Name == name {
			return rt, nil
		}
		names = append(names, rt.Name)
	}
	if name == "" {
		return Runtime{}, fmt.Errorf("%w: no runtime available", ErrUnknownRuntime)
	}
	return Runtime{}, fmt.Errorf("%w %q (available: %s)", ErrUnknownRuntime, name, strings.Join(names, ", "))
}

// candidates lists, deduplicated and in a fixed order, the interpreter
// paths to probe.
func candidates(pathDirs, extra []string) []string {
	var dirs []string
	shims := map[string]bool{}
	for _, d := range pathDirs {
		// A pyenv shims dir: its versions are runnable without the shim,
		// and are probed instead of it. Each shim runs pyenv's shell
		// scripts (a dozen processes, about 100 ms) only to find the same
		// binary, for every shim, at every node's start.
		if filepath.Base(d) == "shims" {
			vs, _ := filepath.Glob(filepath.Join(filepath.Dir(d), "versions", "*", "bin"))
			if len(vs) > 0 {
				shims[d] = true
			}
		}
	}
	for _, d := range pathDirs {
		if !shims[d] {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "/usr/bin", "/usr/local/bin")
	for _, d := range pathDirs {
		if shims[d] {
			vs, _ := filepath.Glob(filepath.Join(filepath.Dir(d), "versions", "*", "bin"))
			sort.Strings(vs)
			dirs = append(dirs, vs...)
		}
	}
	var files []string
	for _, e := range extra {
		if st, err := os.Stat(e); err == nil && st.IsDir() {
			dirs = append(dirs, e)
		} else if err == nil {
			files = append(files, e)
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if candidateName.MatchString(e.Name()) {
				add(filepath.Join(d, e.Name()))
			}
		}
	}
	for _, f := range files {
		add(f)
	}
	return out
}

// probe runs the interpreter at path once and describes the real binary
// behind it.
func probe(path string) (Runtime, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-I", "-S", "-c", probeScript)
	cmd.Env = os.Environ() // pyenv shims need PYENV_* and HOME
	out, err := cmd.Output()
	if err != nil {
		return Runtime{}, err
	}
	var v [3]string
	if err := json.Unmarshal(out, &v); err != nil {
		return Runtime{}, err
	}
	exe, err := filepath.EvalSymlinks(v[0])
	if err != nil || !filepath.IsAbs(exe) {
		return Runtime{}, fmt.Errorf("python: %s: unresolvable sys.executable %q", path, v[0])
	}
	parts := strings.SplitN(v[2], ".", 3)
	if len(parts) < 2 {
		return Runtime{}, fmt.Errorf("python: %s: bad version %q", path, v[2])
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	if major != minVersion[0] || minor < minVersion[1] {
		return Runtime{}, fmt.Errorf("python: %s: version %s is unsupported", path, v[2])
	}
	return Runtime{
		Name:       "python" + parts[0] + "." + parts[1],
		Executable: exe,
		Prefix:     v[1],
		Version:    v[2],
	}, nil
}

// better reports whether a should replace b as the runtime for their name.
func better(a, b Runtime) bool {
	if ra, rb := dirRank(a.Executable), dirRank(b.Executable); ra != rb {
		return ra < rb
	}
	if c := compareVersions(a.Version, b.Version); c != 0 {
		return c > 0
	}
	return a.Executable < b.Executable
}

func dirRank(exe string) int {
	switch filepath.Dir(exe) {
	case "/usr/bin":
		return 0
	case "/usr/local/bin":
		return 1
	}
	return 2
}

// compareVersions compares dotted numeric versions: -1, 0 or +1.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Given returns exactly the runtimes specs name, instead of discovering
// them: each spec is an interpreter's path, or NAME=PATH where NAME must
// be the interpreter's own (python3.N), checked by running it. Newest
// first, as Discover; a spec that does not run, a name that does not
// match, or two specs of one name are errors that say which.
func Given(specs []string) ([]Runtime, error) {
	var rts []Runtime
	for _, spec := range specs {
		name, path, named := strings.Cut(spec, "=")
		if !named {
			name, path = "", spec
		}
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("python: --runtime %q: the interpreter's path must be absolute", spec)
		}
		rt, err := probe(path)
		if err != nil {
			return nil, fmt.Errorf("python: --runtime %q: %s does not run as a Python 3 interpreter: %v", spec, path, err)
		}
		if named && name != rt.Name {
			return nil, fmt.Errorf("python: --runtime %q: %s is %s (%s), not %s", spec, path, rt.Name, rt.Version, name)
		}
		for _, have := range rts {
			if have.Name == rt.Name {
				return nil, fmt.Errorf("python: --runtime %q: %s is given twice", spec, rt.Name)
			}
		}
		rts = append(rts, rt)
	}
	if len(rts) == 0 {
		return nil, errors.New("python: no runtime given")
	}
	sort.Slice(rts, func(a, b int) bool { return compareVersions(rts[a].Version, rts[b].Version) > 0 })
	return rts, nil
}
