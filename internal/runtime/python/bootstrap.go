package python

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed bootstrap.py
var bootstrapSource []byte

// interpreterFlags are the flags every instance's interpreter runs with:
// isolated mode (no user site, no PYTHON* variables, no script dir on
// sys.path), no site module, unbuffered stdout/stderr so the log keeps the
// order of prints from both streams.
var interpreterFlags = []string{"-I", "-S", "-u"}

// WriteBootstrap writes the embedded bootstrap into dir (created if needed)
// under a name derived from its content, read-only (0444), atomically, and
// returns its path. An existing file with the right content is reused, so
// calling it at every start is cheap and safe from several processes.
func WriteBootstrap(dir string) (string, error) {
	sum := sha256.Sum256(bootstrapSource)
	path := filepath.Join(dir, "nimbus-bootstrap-"+hex.EncodeToString(sum[:6])+".py")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, bootstrapSource) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("python: bootstrap dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".bootstrap-*")
	if err != nil {
		return "", fmt.Errorf("python: write bootstrap: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(bootstrapSource); err != nil {
		f.Close()
		return "", fmt.Errorf("python: write bootstrap: %w", err)
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		return "", fmt.Errorf("python: write bootstrap: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("python: write bootstrap: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("python: write bootstrap: %w", err)
	}
	return path, nil
}
