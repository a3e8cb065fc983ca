package logstore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// BenchmarkUpdate stores batches of 130 logs (what the recorder gathers
// in 20 ms of a sequential warm load) into a store that already holds
// 13,000, with request IDs that are random (version 4 UUIDs) or, as the
// gateway makes them now, time-ordered (version 7).
func BenchmarkUpdate(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		name := "random-ids"
		if ordered {
			name = "time-ordered-ids"
		}
		b.Run(name, func(b *testing.B) { benchUpdate(b, ordered) })
	}
}

func benchUpdate(b *testing.B, ordered bool) {
	s, err := Open(filepath.Join(b.TempDir(), "logs.db"), 64<<10)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t := time.Now()
	batch := func() []model.LogEntry {
		es := make([]model.LogEntry, 130)
		for i := range es {
			var id [16]byte
			rand.Read(id[:])
			t = t.Add(150 * time.Microsecond)
			if ordered {
				binary.BigEndian.PutUint64(id[:8], uint64(t.UnixNano()))
			}
			es[i] = model.LogEntry{RequestID: hex.EncodeToString(id[:]), Function: "noop", Time: t,
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
