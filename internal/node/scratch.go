package node

import (
	"fmt"
	"os"
	"path/filepath"
)

// resetScratch empties DATA/tmp, where a node keeps what it needs only
// while it runs (packages unpacked for a code scan), and returns the
// directory for scans within it. What a node killed mid-scan left there
// goes at its next start; the data directory is one node's alone, so
// nothing another process is using can be removed (the system's /tmp,
// used before, collected such leftovers for good).
func resetScratch(dataDir string) (scanDir string, err error) {
	tmp := filepath.Join(dataDir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("clearing %s: %w", tmp, err)
	}
	scanDir = filepath.Join(tmp, "scan")
	if err := os.MkdirAll(scanDir, 0o700); err != nil {
		return "", err
	}
	return scanDir, nil
}
