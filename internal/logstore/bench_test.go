package logstore

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// BenchmarkUpdate stores batches of 60 logs (what the recorder gathers
// in 20 ms of a warm load) with random request IDs into a store that
// already holds 6,000.
func BenchmarkUpdate(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "logs.db"), 64<<10)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t := time.Now()
	batch := func() []client.LogEntry {
		es := make([]client.LogEntry, 60)
		for i := range es {
			var id [16]byte
			rand.Read(id[:])
			t = t.Add(300 * time.Microsecond)
			es[i] = client.LogEntry{RequestID: hex.EncodeToString(id[:]), Function: "noop", Time: t,
				Log: strings.Repeat("x", 250)}
		}
		return es
	}
	for range 100 {
		if err := s.Put(batch()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		es := batch()
		b.StartTimer()
		if err := s.Put(es); err != nil {
			b.Fatal(err)
		}
	}
}
