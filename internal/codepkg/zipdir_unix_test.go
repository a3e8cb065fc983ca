//go:build unix

package codepkg

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestZipDirRefusesAFifo(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"main.py": "x"})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err := ZipDir(dir, DefaultLimits(), nil)
	if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "pipe") {
		t.Fatalf("err = %v, want ErrInvalidPackage naming pipe", err)
	}
}
