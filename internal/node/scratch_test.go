package node

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"nimbus/internal/codepkg"
	"nimbus/internal/scan"
)

func TestScanLeftoversAreRemovedAtStart(t *testing.T) {
	data := t.TempDir()
	scanDir := filepath.Join(data, "scan")
	// What a node killed mid-scan leaves: a package unpacked as a scan
	// unpacks it (read-only directories), and an unpack cut short.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("lib/main.py")
	w.Write([]byte("x = 1\n"))
	zw.Close()
	left := filepath.Join(scanDir, scan.TempPrefix+"123")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := codepkg.Unpack(buf.Bytes(), filepath.Join(left, "pkg"), codepkg.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	// Anything else there, and beside it in the data directory, stays.
	other := filepath.Join(scanDir, "notes.txt")
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(data, "tmp", "user-file")
	os.MkdirAll(filepath.Dir(keep), 0o700)
	if err := os.WriteFile(keep, []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := resetScratch(data)
	if err != nil {
		t.Fatal(err)
	}
	if dir != scanDir {
		t.Errorf("scan directory %s, want DATA/scan", dir)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the scan's leftover is still there (%v)", err)
	}
	for _, f := range []string{other, keep} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
	// A fresh data directory gets the scan directory.
	if dir, err := resetScratch(filepath.Join(t.TempDir(), "new")); err != nil || dir == "" {
		t.Errorf("resetScratch on a new data directory: %q, %v", dir, err)
	}
}
