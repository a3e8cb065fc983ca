package python

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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
	return writeScript(dir, "nimbus-bootstrap-", bootstrapSource)
}

//go:embed runstart.py
var runStarterSource []byte

// RunFlags are the interpreter's flags for an interactive run: unbuffered
// stdio (output appears as printed), no PYTHON* variables, no user site,
// no site module. Unlike an instance's, not isolated: the entry's
// directory is on sys.path, so the files beside it import.
var RunFlags = []string{"-u", "-E", "-s", "-S"}

// WriteRunStarter writes the run starter (runstart.py) into dir as
// WriteBootstrap writes the bootstrap, and returns its path. A sandbox
// started ahead for an interactive run runs it with RunFlags: it waits on
// fd 3 for the run (SendRun), then runs the entry as __main__.
func WriteRunStarter(dir string) (string, error) {
	return writeScript(dir, "nimbus-runstart-", runStarterSource)
}

// SendRun gives a waiting run starter its run on w (its fd 3), and closes
// w: the entry's path as the program sees it, its arguments, and the
// environment variables to add.
func SendRun(w io.WriteCloser, entry string, args []string, env map[string]string) error {
	var b bytes.Buffer
	b.WriteString(entry)
	b.WriteByte(0)
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + env[k])
		b.WriteByte(0)
	}
	_, err := w.Write(b.Bytes())
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeScript writes src into dir as prefix + a digest of src + ".py".
func writeScript(dir, prefix string, src []byte) (string, error) {
	sum := sha256.Sum256(src)
	path := filepath.Join(dir, prefix+hex.EncodeToString(sum[:6])+".py")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, src) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("python: script dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".script-*")
	if err != nil {
		return "", fmt.Errorf("python: write %s: %w", prefix, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(src); err != nil {
		f.Close()
		return "", fmt.Errorf("python: write %s: %w", prefix, err)
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		return "", fmt.Errorf("python: write %s: %w", prefix, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("python: write %s: %w", prefix, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("python: write %s: %w", prefix, err)
	}
	return path, nil
}
