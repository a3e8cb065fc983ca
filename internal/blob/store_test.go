package blob

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := s.Put([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if d != Digest([]byte("hello")) {
		t.Fatalf("digest %s", d)
	}
	got, err := s.Get(ctx, d)
	if err != nil || string(got) != "hello" {
		t.Fatalf("get: %q %v", got, err)
	}
	t.Run("a missing digest is not found", func(t *testing.T) {
		_, err := s.Get(ctx, Digest([]byte("other")))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("want ErrNotFound, got %v", err)
		}
	})
	t.Run("a malformed digest cannot name a path", func(t *testing.T) {
		if _, err := s.Get(ctx, "../../etc/passwd"); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("bytes changed on disk are reported corrupt", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(s.dir, d[:2], d), []byte("jello"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("want ErrCorrupt, got %v", err)
		}
	})
}
