package codepkg

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestUnpackWritesTheTreeReadOnly(t *testing.T) {
	b := mkzip(t,
		file("main.py", "def handler(e, c): return 1\n"),
		dir("pkg/"),
		file("pkg/__init__.py", ""),
		file("pkg/deep/mod.py", "x = 1\n"),
		zent{name: "bin/run", body: "#!/bin/sh\n", mode: 0o755},
		symlink("lib.py", "pkg/deep/mod.py"),
		symlink("pkg/deep/up", ".."),
	)
	dest := filepath.Join(t.TempDir(), "dest")
	if err := Unpack(b, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveTree(dest) })

	want := []string{"bin", "bin/run", "lib.py", "main.py", "pkg", "pkg/__init__.py", "pkg/deep", "pkg/deep/mod.py", "pkg/deep/up"}
	if got := tree(t, dest); !slices.Equal(got, want) {
		t.Fatalf("tree = %q, want %q", got, want)
	}
	modes := map[string]fs.FileMode{
		".":               fs.ModeDir | 0o555,
		"bin":             fs.ModeDir | 0o555,
		"pkg/deep":        fs.ModeDir | 0o555,
		"main.py":         0o444,
		"pkg/__init__.py": 0o444,
		"bin/run":         0o555,
	}
	for name, want := range modes {
		fi, err := os.Lstat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("mode of %s = %v, want %v", name, fi.Mode(), want)
		}
	}
	got, err := os.ReadFile(filepath.Join(dest, "lib.py"))
	if err != nil || string(got) != "x = 1\n" {
		t.Errorf("reading through lib.py = %q, %v", got, err)
	}
	got, err = os.ReadFile(filepath.Join(dest, "pkg/deep/up/__init__.py"))
	if err != nil || string(got) != "" {
		t.Errorf("reading through pkg/deep/up = %q, %v", got, err)
	}
	if target, _ := os.Readlink(filepath.Join(dest, "lib.py")); target != "pkg/deep/mod.py" {
		t.Errorf("lib.py -> %q", target)
	}
	// No temporary directory is left next to dest.
	if got := tree(t, filepath.Dir(dest)); got[0] != "dest" || slices.ContainsFunc(got, func(s string) bool { return filepath.Dir(s) == "." && s != "dest" }) {
		t.Errorf("parent holds %q", got)
	}
}

func TestUnpackDestination(t *testing.T) {
	b := mkzip(t, file("main.py", "x"))
	tests := []struct {
		name  string
		setup func(t *testing.T, dest string)
		want  error // nil: success
	}{
		{"a missing dest is created", func(*testing.T, string) {}, nil},
		{"an empty dest directory is filled", func(t *testing.T, dest string) {
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"a dest directory with something in it is refused", func(t *testing.T, dest string) {
			writeTree(t, dest, map[string]string{"keep.txt": "mine"})
		}, ErrDestExists},
		{"a dest that is a file is refused", func(t *testing.T, dest string) {
			if err := os.WriteFile(dest, []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrDestExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			tc.setup(t, dest)
			before := tree(t, filepath.Dir(dest))
			err := Unpack(b, dest, DefaultLimits())
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if after := tree(t, filepath.Dir(dest)); !slices.Equal(after, before) {
					t.Errorf("tree changed from %q to %q", before, after)
				}
				return
			}
			t.Cleanup(func() { RemoveTree(dest) })
			if got, err := os.ReadFile(filepath.Join(dest, "main.py")); err != nil || string(got) != "x" {
				t.Errorf("main.py = %q, %v", got, err)
			}
		})
	}
}

func TestUnpackNeedsAnExistingParent(t *testing.T) {
	b := mkzip(t, file("main.py", "x"))
	if err := Unpack(b, filepath.Join(t.TempDir(), "no", "dest"), DefaultLimits()); err == nil {
		t.Fatal("Unpack into a missing parent succeeded")
	}
}

func TestUnpackTwiceToTheSameDestReportsDestExists(t *testing.T) {
	b := mkzip(t, file("main.py", "x"))
	dest := filepath.Join(t.TempDir(), "dest")
	if err := Unpack(b, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveTree(dest) })
	if err := Unpack(b, dest, DefaultLimits()); !errors.Is(err, ErrDestExists) {
		t.Fatalf("second Unpack: err = %v, want ErrDestExists", err)
	}
}

func TestRemoveTreeDeletesAReadOnlyTree(t *testing.T) {
	b := mkzip(t, file("a/b/c.py", "x"), symlink("l", "a"))
	dest := filepath.Join(t.TempDir(), "dest")
	if err := Unpack(b, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(dest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dest still there: %v", err)
	}
	if err := RemoveTree(dest); err != nil {
		t.Fatalf("RemoveTree of a missing dir: %v", err)
	}
}
