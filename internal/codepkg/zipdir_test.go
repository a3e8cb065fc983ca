package codepkg

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"main.py":                             "def handler(e, c): return 1\n",
		"pkg/__init__.py":                     "",
		"pkg/mod.py":                          "x = 1\n",
		"pkg/__pycache__/mod.cpython-311.pyc": "junk",
		"stale.pyc":                           "junk",
		".git/HEAD":                           "ref: refs/heads/main\n",
		".nimbus/state":                       "junk",
		"nimbus.yaml":                         "name: hello\n",
	})
	if err := os.Chmod(filepath.Join(dir, "main.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pkg/mod.py", filepath.Join(dir, "lib.py")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func zipNames(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

func TestZipDirStoresTheTreeSortedAndSkipsJunk(t *testing.T) {
	b, err := ZipDir(sampleDir(t), DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"empty/", "lib.py", "main.py", "nimbus.yaml", "pkg/", "pkg/__init__.py", "pkg/mod.py"}
	if got := zipNames(t, b); !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
}

func TestZipDirIsDeterministic(t *testing.T) {
	a := sampleDir(t)
	b := sampleDir(t)
	// Different times and an extra skipped file must not change the bytes.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "pkg/mod.py"), old, old); err != nil {
		t.Fatal(err)
	}
	writeTree(t, b, map[string]string{"pkg/__pycache__/other.pyc": "more junk"})
	za, err := ZipDir(a, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	zb, err := ZipDir(b, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ia, _ := Validate(za, DefaultLimits())
	ib, _ := Validate(zb, DefaultLimits())
	if !bytes.Equal(za, zb) || ia.SHA256 != ib.SHA256 {
		t.Errorf("same tree gave different zips: %s vs %s", ia.SHA256, ib.SHA256)
	}
}

func TestZipDirRoundTripsThroughUnpack(t *testing.T) {
	src := sampleDir(t)
	b, err := ZipDir(src, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "dest")
	if err := Unpack(b, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveTree(dest) })
	for _, name := range []string{"main.py", "pkg/mod.py", "lib.py", "nimbus.yaml"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "main.py")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("executable main.py unpacked as %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "lib.py")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lib.py is not a symlink after the round trip: %v", err)
	}
}

func TestZipDirRefusesEscapingSymlinks(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		mention string
	}{
		{"a symlink to a parent file is refused", "../outside.py", "leads outside"},
		{"a symlink to the parent directory is refused", "..", "leads outside"},
		{"a dangling symlink out of the tree is refused", "../../nowhere/x", "leads outside"},
		{"an absolute symlink is refused", "/etc/passwd", "is absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			writeTree(t, base, map[string]string{"outside.py": "secret", "fn/main.py": "x"})
			fn := filepath.Join(base, "fn")
			if err := os.Symlink(tc.target, filepath.Join(fn, "link")); err != nil {
				t.Fatal(err)
			}
			_, err := ZipDir(fn, DefaultLimits(), nil)
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), "link") {
				t.Fatalf("err = %v, want ErrInvalidPackage naming link and saying %q", err, tc.mention)
			}
		})
	}
}

func TestZipDirStopsAtTheLimits(t *testing.T) {
	random := make([]byte, 256<<10)
	rand.Read(random)
	tests := []struct {
		name    string
		files   map[string]string
		lim     Limits
		mention string
	}{
		{"incompressible data past MaxZip is refused", map[string]string{"blob.bin": string(random)},
			Limits{MaxZip: 64 << 10}, "zip passes the limit of 65536"},
		{"files past MaxUnzipped are refused", map[string]string{"a.txt": strings.Repeat("a", 10<<10), "b.txt": strings.Repeat("b", 10<<10)},
			Limits{MaxUnzipped: 15 << 10}, "unzipped limit"},
		{"more entries than MaxFiles are refused", map[string]string{"a": "", "b": "", "c": ""},
			Limits{MaxFiles: 2}, "more than 2 entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			_, err := ZipDir(dir, tc.lim, nil)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want ErrTooLarge saying %q", err, tc.mention)
			}
		})
	}
}

func TestZipDirRefusesAnEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"__pycache__/x.pyc": "junk"})
	if _, err := ZipDir(dir, DefaultLimits(), nil); !errors.Is(err, ErrInvalidPackage) {
		t.Fatalf("err = %v, want ErrInvalidPackage", err)
	}
}

func TestZipDirReportsProgress(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"big.txt": strings.Repeat("z", 3<<20+5), "small.py": "x"})
	var calls [][2]int64
	if _, err := ZipDir(dir, DefaultLimits(), func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	}); err != nil {
		t.Fatal(err)
	}
	const total = 3<<20 + 6
	if len(calls) < 3 {
		t.Fatalf("only %d progress calls: %v", len(calls), calls)
	}
	for i, c := range calls {
		if c[1] != total || c[0] > total || (i > 0 && c[0] < calls[i-1][0]) {
			t.Fatalf("bad progress sequence %v", calls)
		}
	}
	if last := calls[len(calls)-1]; last[0] != total {
		t.Errorf("last progress = %v, want done == total", last)
	}
}

func TestZipDirOfAMissingDirectoryFails(t *testing.T) {
	if _, err := ZipDir(filepath.Join(t.TempDir(), "nope"), DefaultLimits(), nil); err == nil {
		t.Fatal("ZipDir of a missing directory succeeded")
	}
}
