package sandbox

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// TaskRoot is where an isolated instance sees its function's code, and
// RuntimeDir where it sees the platform's own files (the bootstrap).
const (
	TaskRoot   = "/var/task"
	RuntimeDir = "/var/runtime"
)

// bindMount is one read-only bind mount of a host path into the root.
type bindMount struct {
	Source string `json:"source"` // host path
	Target string `json:"target"` // absolute path inside the sandbox
	File   bool   `json:"file"`   // a file, not a directory
}

// runtimeMounts computes, once per interpreter, the host paths an
// interpreter needs: itself, its standard library and the shared
// libraries it and its extension modules link. Results are cached.
type runtimeMounts struct {
	mu    sync.Mutex
	cache map[string]*mountsOnce // computed once per interpreter, outside mu
}

type mountsOnce struct {
	once   sync.Once
	mounts []bindMount
	err    error
}

var pythonBinRe = regexp.MustCompile(`^python(\d+\.\d+)$`)

func (r *runtimeMounts) For(exe, prefix string) ([]bindMount, error) {
	return r.once(exe+"\x00"+prefix, func() ([]bindMount, error) { return computeRuntimeMounts(exe, prefix) })
}

// once computes key's mounts once, for every caller at once; a failure
// is not kept, so the next caller tries again.
func (r *runtimeMounts) once(key string, compute func() ([]bindMount, error)) ([]bindMount, error) {
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]*mountsOnce{}
	}
	o := r.cache[key]
	if o == nil {
		o = &mountsOnce{}
		r.cache[key] = o
	}
	r.mu.Unlock()
	o.once.Do(func() { o.mounts, o.err = compute() })
	if o.err != nil {
		r.mu.Lock()
		delete(r.cache, key) // try again next time
		r.mu.Unlock()
	}
	return o.mounts, o.err
}

func computeRuntimeMounts(exe, prefix string) ([]bindMount, error) {
	if prefix == "" {
		return nil, fmt.Errorf("sandbox: runtime prefix unknown for %s", exe)
	}
	var mounts []bindMount
	var libDir string
	if prefix == "/usr" || prefix == "/usr/local" {
		// A system interpreter: its binary and its own library directory,
		// not the whole of /usr.
		mounts = append(mounts, bindMount{Source: exe, Target: exe, File: true})
		if m := pythonBinRe.FindStringSubmatch(filepath.Base(exe)); m != nil {
			libDir = filepath.Join(prefix, "lib", "python"+m[1])
			mounts = append(mounts, bindMount{Source: libDir, Target: libDir})
		} else {
			return nil, fmt.Errorf("sandbox: cannot tell the version of %s from its name", exe)
		}
	} else {
		// A self-contained installation (pyenv, /opt/python...): all of it.
		mounts = append(mounts, bindMount{Source: prefix, Target: prefix})
		matches, _ := filepath.Glob(filepath.Join(prefix, "lib", "python3.*"))
		if len(matches) > 0 {
			libDir = matches[0]
		}
	}
	// Shared libraries of the interpreter and its extension modules.
	objs := []string{exe}
	if libDir != "" {
		so, _ := filepath.Glob(filepath.Join(libDir, "lib-dynload", "*.so"))
		objs = append(objs, so...)
	}
	dirs, err := sharedLibraryDirs(coveringObjects(objs))
	if err != nil {
		return nil, err
	}
	covered := func(p string) bool {
		for _, m := range mounts {
			if !m.File && (p == m.Target || strings.HasPrefix(p, m.Target+"/")) {
				return true
			}
		}
		return false
	}
	for _, d := range dirs {
		if !covered(d) {
			mounts = append(mounts, bindMount{Source: d, Target: d})
		}
	}
	for _, f := range []string{"/etc/ld.so.cache"} {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			mounts = append(mounts, bindMount{Source: f, Target: f, File: true})
		}
	}
	for _, d := range []string{"/usr/share/zoneinfo"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			mounts = append(mounts, bindMount{Source: d, Target: d})
		}
	}
	return mounts, nil
}

// LibsOf returns the mounts of the directories of the shared libraries a
// program other than the interpreter loads (none for a static binary),
// computed once per program.
func (r *runtimeMounts) LibsOf(program string) ([]bindMount, error) {
	return r.once("libs\x00"+program, func() ([]bindMount, error) {
		f, err := elf.Open(program)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", program, err)
		}
		libs, _ := f.ImportedLibraries()
		interp := f.Section(".interp") != nil
		f.Close()
		if len(libs) == 0 && !interp {
			return nil, nil // static
		}
		dirs, err := sharedLibraryDirs([]string{program})
		if err != nil {
			return nil, err
		}
		var mounts []bindMount
		for _, d := range dirs {
			mounts = append(mounts, bindMount{Source: d, Target: d})
		}
		return mounts, nil
	})
}

// appendUncovered appends to binds the directory mounts of more that no
// directory of binds already covers.
func appendUncovered(binds, more []bindMount) []bindMount {
	for _, m := range more {
		covered := false
		for _, b := range binds {
			if !b.File && (m.Target == b.Target || strings.HasPrefix(m.Target, b.Target+"/")) {
				covered = true
				break
			}
		}
		if !covered {
			binds = append(binds, m)
		}
	}
	return binds
}

// coveringObjects picks, from objs (the interpreter first), those whose
// direct dependencies (DT_NEEDED) name a library no earlier pick needs:
// ldd follows dependencies through, so the libraries they load are those
// all of objs load, for a fraction of the loader runs (a pyenv
// interpreter has some 70 extension modules, most needing nothing but
// libc). An object that cannot be read as ELF is kept.
func coveringObjects(objs []string) []string {
	needed := map[string]bool{}
	var out []string
	for i, o := range objs {
		f, err := elf.Open(o)
		if err != nil {
			out = append(out, o)
			continue
		}
		libs, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			out = append(out, o)
			continue
		}
		fresh := i == 0
		for _, l := range libs {
			if !needed[l] {
				needed[l], fresh = true, true
			}
		}
		if fresh {
			out = append(out, o)
		}
	}
	return out
}

// sharedLibraryDirs runs ldd over objs and returns the real directories
// of every library they load, sorted.
func sharedLibraryDirs(objs []string) ([]string, error) {
	seen := map[string]bool{}
	for start := 0; start < len(objs); start += 64 {
		end := min(start+64, len(objs))
		out, err := exec.Command("ldd", objs[start:end]...).Output()
		if err != nil && len(out) == 0 {
			return nil, fmt.Errorf("sandbox: ldd %s: %w", objs[start], err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			var lib string
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/") && !strings.HasSuffix(f[0], ":"):
				lib = f[0] // the dynamic loader itself
			default:
				continue
			}
			seen[filepath.Dir(lib)] = true
			if real, err := filepath.EvalSymlinks(filepath.Dir(lib)); err == nil {
				seen[real] = true
			}
		}
	}
	var dirs []string
	for d := range seen {
		if real, err := filepath.EvalSymlinks(d); err == nil && real == d {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return dirs, nil
}

// hostSymlinks returns the top-level symlinks of the host's merged /usr
// layout (/lib -> usr/lib and friends), to recreate in the sandbox so
// that paths baked into binaries resolve.
func hostSymlinks() [][2]string {
	var out [][2]string
	for _, name := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t, err := os.Readlink(name); err == nil {
			out = append(out, [2]string{t, name})
		}
	}
	return out
}

// etcFiles are the few files under /etc that the sandbox provides, made
// up rather than copied from the host.
func etcFiles(uid, gid int) map[string]string {
	return map[string]string{
		"/etc/passwd":   fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:%d:%d:nimbus sandbox:/tmp:/sbin/nologin\n", uid, gid),
		"/etc/group":    fmt.Sprintf("root:x:0:\nsbx_user1051:x:%d:\n", gid),
		"/etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
		"/etc/hostname": "nimbus\n",
	}
}
