package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nimbus/internal/codepkg"
	"nimbus/internal/deps"
	"nimbus/internal/scan"
)

// resetScratch returns DATA/scan, where code scans unpack the packages
// they scan, after removing what scans of an earlier run left there (a
// node killed mid-scan). Only the scans' own directories go, and they go
// as the code cache removes packages (unpacked directories are
// read-only). The caller holds the data directory (its log store's lock),
// so no other process is scanning into it.
func resetScratch(dataDir string) (scanDir string, err error) {
	scanDir = filepath.Join(dataDir, "scan")
	if err := os.MkdirAll(scanDir, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(scanDir)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), scan.TempPrefix) || strings.HasPrefix(e.Name(), deps.TempPrefix)) {
			errs = append(errs, codepkg.RemoveTree(filepath.Join(scanDir, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("clearing %s: %w", scanDir, err)
	}
	return scanDir, nil
}
