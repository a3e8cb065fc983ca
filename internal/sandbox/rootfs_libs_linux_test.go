package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The covering objects load the same library directories as all of an
// interpreter's objects, for fewer loader runs: checked on one of this
// machine's real interpreters (pyenv's, else Debian's).
func TestCoveringObjectsLoadWhatAllObjectsLoad(t *testing.T) {
	tried := 0
	for _, exe := range []string{"/root/.pyenv/versions/3.11.7/bin/python3.11", "/usr/bin/python3.11"} {
		if _, err := os.Stat(exe); err != nil || tried > 0 {
			continue
		}
		tried++
		lib := filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib", "python3.11", "lib-dynload", "*.so")
		so, _ := filepath.Glob(lib)
		objs := append([]string{exe}, so...)
		all, err := sharedLibraryDirs(objs)
		if err != nil {
			t.Fatal(err)
		}
		few := coveringObjects(objs)
		some, err := sharedLibraryDirs(few)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(all, some) {
			t.Errorf("%s: %d covering objects load %q, all %d load %q", exe, len(few), some, len(objs), all)
		}
		if few[0] != exe || len(objs) > 10 && len(few) >= len(objs) {
			t.Errorf("%s: %d covering objects of %d", exe, len(few), len(objs))
		}
		t.Logf("%s: %d of %d objects cover %d directories", exe, len(few), len(objs), len(all))
	}
	if tried == 0 {
		t.Skip("no interpreter to look at")
	}
}
