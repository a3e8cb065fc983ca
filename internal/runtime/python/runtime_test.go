package python

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDiscoverFindsTheSystemPython(t *testing.T) {
	if _, err := os.Stat(testPython); err != nil {
		t.Skipf("%s not available", testPython)
	}
	rts, err := Discover()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for k, rt := range rts {
		if names[rt.Name] {
			t.Errorf("%s reported twice", rt.Name)
		}
		names[rt.Name] = true
		if strings.Contains(rt.Executable, "/shims/") || !filepath.IsAbs(rt.Executable) || rt.Prefix == "" {
			t.Errorf("%+v: not a real interpreter", rt)
		}
		if !strings.HasPrefix(rt.Version, strings.TrimPrefix(rt.Name, "python")+".") {
			t.Errorf("%+v: name and version disagree", rt)
		}
		if k > 0 && compareVersions(rts[k-1].Version, rt.Version) < 0 {
			t.Errorf("not newest first: %s before %s", rts[k-1].Version, rt.Version)
		}
	}
	rt, err := Pick(rts, "python3.11")
	if err != nil {
		t.Fatal(err)
	}
	if rt.Executable != testPython {
		t.Errorf("python3.11 is %s, want /usr/bin's", rt.Executable)
	}
	if newest, _ := Pick(rts, ""); newest != rts[0] {
		t.Errorf("Pick(\"\") = %+v", newest)
	}
}

func TestDiscoverSkipsInterpretersThatDoNotRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "python3.99"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rts, _ := Discover(dir)
	for _, rt := range rts {
		if rt.Name == "python3.99" {
			t.Fatalf("reported a broken interpreter: %+v", rt)
		}
	}
}

func TestPickUnknownListsTheAvailableNames(t *testing.T) {
	rts := []Runtime{{Name: "python3.12"}, {Name: "python3.11"}}
	_, err := Pick(rts, "python2.7")
	if !errors.Is(err, ErrUnknownRuntime) || !strings.Contains(err.Error(), "python3.12, python3.11") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Pick(nil, ""); !errors.Is(err, ErrUnknownRuntime) {
		t.Fatalf("empty list: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"3.11.2", "3.11.2", 0}, {"3.11.10", "3.11.9", 1}, {"3.9.18", "3.10.1", -1}, {"3.12", "3.12.0", 0},
	}
	for _, c := range cases {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%s, %s) = %d", c.a, c.b, got)
		}
	}
}

func TestWriteBootstrapIsReadOnlyAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boot")
	p1, err := WriteBootstrap(dir)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := WriteBootstrap(dir)
	if err != nil || p1 != p2 {
		t.Fatalf("second write: %s %v", p2, err)
	}
	st, err := os.Stat(p1)
	if err != nil || st.Mode().Perm() != 0o444 {
		t.Fatalf("stat: %v %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(p1); !bytes.Equal(b, bootstrapSource) {
		t.Fatal("content differs")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left temp files: %v", ents)
	}
}

func TestLogPipeCutsWhatWasFedSinceTheLastCut(t *testing.T) {
	killed := 0
	lp := newLogPipe(nil, 100, func() { killed++ })
	for _, b := range []byte("hello\n") { // one byte at a time
		lp.feed([]byte{b})
	}
	if got := lp.cut(); string(got) != "hello\n" {
		t.Fatalf("cut = %q", got)
	}
	lp.feed([]byte("second"))
	if got := lp.cut(); string(got) != "second" {
		t.Fatalf("cut = %q", got)
	}
	if got := lp.cut(); len(got) != 0 {
		t.Fatalf("cut twice = %q", got)
	}
	if killed != 0 {
		t.Fatal("overflow without cause")
	}
}

func TestLogPipeStaysBoundedPastTheLimit(t *testing.T) {
	killed := 0
	lp := newLogPipe(nil, 1000, func() { killed++ })
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 1000 {
		lp.feed(chunk)
	}
	if overflow, _ := lp.state(); !overflow || killed != 1 {
		t.Fatalf("overflow %v, killed %d", overflow, killed)
	}
	if n := len(lp.cut()); n != 1000 {
		t.Fatalf("kept %d bytes", n)
	}
}

func TestLogPipeDrainReadsWhatIsWaiting(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lp := newLogPipe(r, 1<<20, func() {})
	go lp.run()
	defer lp.close()
	for k := range 50 {
		line := strings.Repeat("y", k*100) + "\n"
		if _, err := w.WriteString(line); err != nil {
			t.Fatal(err)
		}
		// The reader goroutine may or may not have read it yet: drain
		// finds the rest, and the cut holds exactly what was written.
		lp.drain()
		if got := lp.cut(); string(got) != line {
			t.Fatalf("write %d: cut %d bytes, want %d", k, len(got), len(line))
		}
	}
}

// A pyenv's shims are not probed (each would run pyenv's scripts to find
// a binary the versions directories give directly), but its versions
// are; a shims directory without versions beside it is scanned as any.
func TestCandidatesTakePyenvVersionsNotTheirShims(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"pyenv/shims/python3.11", "pyenv/versions/3.11.7/bin/python3.11", "lone/shims/python3.12"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := candidates([]string{filepath.Join(root, "pyenv/shims"), filepath.Join(root, "lone/shims")}, nil)
	has := func(p string) bool { return slices.Contains(got, filepath.Join(root, p)) }
	if has("pyenv/shims/python3.11") || !has("pyenv/versions/3.11.7/bin/python3.11") || !has("lone/shims/python3.12") {
		t.Fatalf("candidates: %q", got)
	}
}

// Given offers exactly the interpreters named, checks each name against
// the interpreter, and says what is wrong with a bad one.
func TestGivenRuntimesAreCheckedAndOfferedAlone(t *testing.T) {
	found, err := Discover()
	if err != nil {
		t.Skip(err)
	}
	rt := found[0]
	rts, err := Given([]string{rt.Name + "=" + rt.Executable})
	if err != nil || len(rts) != 1 || rts[0].Name != rt.Name || rts[0].Executable != rt.Executable {
		t.Fatalf("Given(%s=%s) = %+v, %v", rt.Name, rt.Executable, rts, err)
	}
	for _, c := range []struct{ spec, want string }{
		{"python3.99=" + rt.Executable, "not python3.99"},
		{"python3.11=relative/python", "absolute"},
		{"/nonexistent/python3", "does not run"},
	} {
		if _, err := Given([]string{c.spec}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Given(%q): %v, want an error about %q", c.spec, err, c.want)
		}
	}
	if _, err := Given([]string{rt.Executable, rt.Name + "=" + rt.Executable}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("one runtime given twice: %v", err)
	}
}
