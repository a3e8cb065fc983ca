package sandbox

import (
	"os"
	"testing"
)

// TestIsolatedExecutor returns an isolating executor with a state
// directory of its own, closed when the test ends, or nil (having logged
// why) where this host cannot build sandboxes: not root, or missing what
// NewIsolatedExecutor needs. The test binary's TestMain must call
// InitMain when IsInit.
func TestIsolatedExecutor(t testing.TB) *IsolatedExecutor {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("no sandbox: building one needs root")
		return nil
	}
	e, err := NewIsolatedExecutor(IsolatedConfig{StateDir: t.TempDir()})
	if err != nil {
		t.Logf("no sandbox: %v", err)
		return nil
	}
	t.Cleanup(func() { e.Close() })
	return e
}
