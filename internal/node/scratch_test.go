package node

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScratchIsEmptiedAtStart(t *testing.T) {
	data := t.TempDir()
	left := filepath.Join(data, "tmp", "scan", "nimbus-scan-123", ".pkg.unpack-9")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "main.py"), []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(data, "logs.db")
	if err := os.WriteFile(keep, []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := resetScratch(data)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(data, "tmp", "scan") {
		t.Errorf("scan directory %s, want DATA/tmp/scan", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("the scan directory holds %v (%v); want it empty", entries, err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "state" {
		t.Errorf("the rest of the data directory was touched: %q, %v", b, err)
	}
}
