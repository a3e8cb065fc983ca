// Package blob owns the content-addressed store of code packages: each
// blob is a file named by the SHA-256 of its bytes. Writes are atomic
// (temp file, fsync, rename), so a blob that exists is whole.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("blob not found")

// ErrQuorum is returned when a blob could not be copied to a majority of
// servers (too many are down), so a revision using it is not committed.
var ErrQuorum = errors.New("the code could not be stored on a majority of servers")

// ErrCorrupt is returned when stored bytes no longer match their digest.
var ErrCorrupt = errors.New("blob corrupt")

var digestRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Store is a directory of blobs. Safe for concurrent use.
type Store struct{ dir string }

// Open opens (creating if needed) a store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

// Digest returns the hex SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *Store) path(digest string) (string, error) {
	if !digestRe.MatchString(digest) {
		return "", fmt.Errorf("bad digest %q: want 64 lowercase hex characters", digest)
	}
	return filepath.Join(s.dir, digest[:2], digest), nil
}

// Put stores b and returns its digest. Storing the same bytes twice is
// cheap and harmless.
func (s *Store) Put(b []byte) (string, error) {
	digest := Digest(b)
	p, _ := s.path(digest)
	if _, err := os.Stat(p); err == nil {
		return digest, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	return digest, nil
}

// Has reports whether the store holds digest's blob (unchecked: Get
// checks it).
func (s *Store) Has(digest string) bool {
	p, err := s.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Get returns the blob's bytes after checking them against the digest.
func (s *Store) Get(_ context.Context, digest string) ([]byte, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if Digest(b) != digest {
		return nil, fmt.Errorf("%s: %w", digest, ErrCorrupt)
	}
	return b, nil
}
