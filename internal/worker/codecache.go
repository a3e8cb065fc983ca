package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/codepkg"
)

// codeCache unpacks each code package once, read-only, under dir/<digest>,
// and removes the ones no longer used (prune).
type codeCache struct {
	dir   string
	blobs BlobSource
	mu    sync.Mutex
	busy  map[string]*sync.Mutex // one unpack (or removal) per digest at a time
	used  map[string]time.Time   // when dirFor last returned each digest
}

// dirFor returns the directory holding the package (a function's code,
// or a layer) whose zip has digest, fetching, checking and unpacking it
// (within lim) first if it is not there.
func (c *codeCache) dirFor(ctx context.Context, digest string, lim codepkg.Limits) (string, error) {
	m := c.lock(digest)
	defer m.Unlock()
	c.touch(digest)
	// And again once the package is there: a slow fetch must not leave
	// it looking idle (prune goes by this time).
	defer c.touch(digest)

	dir := filepath.Join(c.dir, digest)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	zip, err := c.blobs.Get(ctx, digest)
	if err != nil {
		return "", err
	}
	// Whatever the source checked, nothing is unpacked under a digest
	// it does not have.
	if got := blob.Digest(zip); got != digest {
		return "", fmt.Errorf("%w: the package fetched for %s has digest %s", blob.ErrCorrupt, digest, got)
	}
	if err := codepkg.Unpack(zip, dir, lim); err != nil {
		return "", err
	}
	return dir, nil
}

// touch records that digest is being used now.
func (c *codeCache) touch(digest string) {
	c.mu.Lock()
	c.used[digest] = time.Now()
	c.mu.Unlock()
}

// lock locks digest's mutex and returns it.
func (c *codeCache) lock(digest string) *sync.Mutex {
	c.mu.Lock()
	m := c.busy[digest]
	if m == nil {
		m = &sync.Mutex{}
		c.busy[digest] = m
	}
	c.mu.Unlock()
	m.Lock()
	return m
}

// prune removes the unpacked packages that are not inUse and were last
// used before idleBefore, but for the keep most recently used of them,
// and returns their digests. A package dirFor has not returned since the
// worker started counts as last used when it was unpacked. Each removal
// holds the digest's lock, so that a dirFor meanwhile waits, then unpacks
// it again; unstage is called first (the executor's staging mount).
func (c *codeCache) prune(inUse map[string]bool, keep int, idleBefore time.Time, unstage func(dir string)) ([]string, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, err
	}
	type candidate struct {
		digest string
		used   time.Time
	}
	var old []candidate
	c.mu.Lock()
	for _, e := range entries {
		d := e.Name()
		if !e.IsDir() || !isDigest(d) || inUse[d] {
			continue
		}
		used, ok := c.used[d]
		if !ok {
			info, err := e.Info()
			if err != nil {
				continue
			}
			used = info.ModTime()
		}
		if used.Before(idleBefore) {
			old = append(old, candidate{d, used})
		}
	}
	c.mu.Unlock()
	sort.Slice(old, func(i, j int) bool { return old[i].used.After(old[j].used) })
	var removed []string
	var errs []error
	for _, cand := range old[min(keep, len(old)):] {
		m := c.lock(cand.digest)
		c.mu.Lock()
		used, ok := c.used[cand.digest]
		c.mu.Unlock()
		if ok && !used.Before(idleBefore) { // used since the listing
			m.Unlock()
			continue
		}
		dir := filepath.Join(c.dir, cand.digest)
		unstage(dir)
		// Out of the way first, whole: a removal cut short (a crash, an
		// error) must not leave a partial package under its digest's
		// name, which dirFor would take as unpacked.
		trash, err := os.MkdirTemp(c.dir, "."+cand.digest+trashSuffix)
		if err == nil {
			err = os.Rename(dir, filepath.Join(trash, "pkg"))
		}
		if err != nil {
			errs = append(errs, err)
			m.Unlock()
			continue
		}
		c.mu.Lock()
		delete(c.used, cand.digest)
		c.mu.Unlock()
		m.Unlock()
		removed = append(removed, cand.digest)
		if err := codepkg.RemoveTree(trash); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// trashSuffix marks a package being removed (".<digest>.trash-*"), and
// unpackSuffix one being unpacked (codepkg.Unpack's temporary
// directory). Either, left by a worker that stopped midway, is garbage.
const (
	trashSuffix  = ".trash-"
	unpackSuffix = ".unpack-"
)

// clearLeftovers removes what removals and unpacks cut short by an
// earlier run left in the cache. The worker's data directory is its own.
func (c *codeCache) clearLeftovers() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, ".") && (strings.Contains(n, trashSuffix) || strings.Contains(n, unpackSuffix)) {
			errs = append(errs, codepkg.RemoveTree(filepath.Join(c.dir, n)))
		}
	}
	return errors.Join(errs...)
}

// isDigest reports whether name is a lowercase hex SHA-256: a package's
// directory, not an unpack in progress.
func isDigest(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, r := range name {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
