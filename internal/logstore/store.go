// Package logstore owns the full logs of invocations on one server: a
// bbolt database keyed by function and time, with the key of each request
// ID beside it.
// Each log is capped when stored; logs are removed when their invocation
// records leave the state store (the same retention).
// The same database keeps the invocation records and audit entries this
// server could not commit through Raft yet (pending.go), until they are
// committed.
package logstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"nimbus/internal/model"

	bolt "go.etcd.io/bbolt"
)

var (
	// bucketLogs holds each log under its index key (function, time,
	// request id), so that a batch of logs lands in the last leaves of the
	// B-tree: keyed by request id (random UUIDs) each log dirtied a leaf of
	// its own: a 60-log batch cost ~1.3x the CPU (BenchmarkUpdate). Logs stored
	// before are under their request id and are still found there.
	bucketLogs  = []byte("logs")  // index key (or, older, request id) -> LogEntry JSON
	bucketIndex = []byte("index") // function \x00 unix-nanos(8) request id -> nil
	bucketKeys  = []byte("keys")  // request id -> its index key (so Delete decodes nothing)
)

// Store holds invocation logs. Safe for concurrent use.
type Store struct {
	db  *bolt.DB
	cap int
}

// Open opens (creating if needed) the log database at path; each stored
// log keeps at most capBytes (its end, where the REPORT line is).
func Open(path string, capBytes int) (*Store, error) {
	// Logs are a per-server cache beside the replicated records (which
	// carry each log's tail): losing the last moments of them in a power
	// cut is acceptable, an fsync per batch on the invoke machine is not.
	// The 64 MB initial mapping (address space only) spares a new server
	// the remaps bbolt makes while the file grows from 32 kB (see
	// controlplane's initialMmapSize).
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true, InitialMmapSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketIndex, bucketKeys, bucketPendingRecords, bucketPendingAudit} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, cap: capBytes}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func indexKey(function string, t time.Time, id string) []byte {
	k := make([]byte, 0, len(function)+1+8+len(id))
	k = append(k, function...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return append(k, id...)
}

// Cap trims a log to the store's cap, keeping its end. It reports whether
// anything was cut.
func (s *Store) Cap(log string) (string, bool) {
	if s.cap > 0 && len(log) > s.cap {
		return log[len(log)-s.cap:], true
	}
	return log, false
}

// Put stores entries in one transaction, capping each log.
func (s *Store) Put(entries []model.LogEntry) error { return s.Update(entries, nil) }

// Update stores entries (capping each log) and then removes the logs of
// the invocations in remove, in one transaction: one commit where Put and
// Delete would take two.
func (s *Store) Update(entries []model.LogEntry, remove []string) error {
	if len(entries) == 0 && len(remove) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := s.put(tx, entries); err != nil {
			return err
		}
		return deleteIDs(tx, remove)
	})
}

func (s *Store) put(tx *bolt.Tx, entries []model.LogEntry) error {
	logs, index, keys := tx.Bucket(bucketLogs), tx.Bucket(bucketIndex), tx.Bucket(bucketKeys)
	for _, e := range entries {
		if log, cut := s.Cap(e.Log); cut {
			e.Log, e.Truncated = log, true
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		ik := indexKey(model.QualifiedName(e.Namespace, e.Function), e.Time, e.RequestID)
		// A request stored again (an asynchronous retry) replaces its
		// earlier log.
		if err := deleteIDs(tx, []string{e.RequestID}); err != nil {
			return err
		}
		if err := logs.Put(ik, b); err != nil {
			return err
		}
		if err := index.Put(ik, nil); err != nil {
			return err
		}
		if err := keys.Put([]byte(e.RequestID), ik); err != nil {
			return err
		}
	}
	return nil
}

// get returns the stored JSON of a log by its index key, or (stored
// before logs were keyed by it) by its request id.
func get(logs *bolt.Bucket, ik, id []byte) []byte {
	if ik != nil {
		if b := logs.Get(ik); b != nil {
			return b
		}
	}
	return logs.Get(id)
}

// Get returns the log of one invocation, if stored.
func (s *Store) Get(id string) (model.LogEntry, bool, error) {
	var e model.LogEntry
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := get(tx.Bucket(bucketLogs), tx.Bucket(bucketKeys).Get([]byte(id)), []byte(id))
		if b == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b, &e)
	})
	return e, found, err
}

// List returns up to limit logs of a function (by its qualified name,
// model.QualifiedName) at or after since, oldest first (the newest limit
// of them).
func (s *Store) List(function string, since time.Time, limit int) ([]model.LogEntry, error) {
	var out []model.LogEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		logs := tx.Bucket(bucketLogs)
		c := tx.Bucket(bucketIndex).Cursor()
		prefix := append([]byte(function), 0)
		start := prefix
		if !since.IsZero() && since.UnixNano() > 0 {
			start = indexKey(function, since, "")
		}
		var iks [][]byte
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			iks = append(iks, k)
		}
		if limit > 0 && len(iks) > limit {
			iks = iks[len(iks)-limit:]
		}
		for _, ik := range iks {
			b := get(logs, ik, ik[len(prefix)+8:])
			if b == nil {
				continue
			}
			var e model.LogEntry
			if err := json.Unmarshal(b, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Delete removes the logs of the given invocations.
func (s *Store) Delete(ids []string) error { return s.Update(nil, ids) }

func deleteIDs(tx *bolt.Tx, ids []string) error {
	logs, index, keys := tx.Bucket(bucketLogs), tx.Bucket(bucketIndex), tx.Bucket(bucketKeys)
	for _, id := range ids {
		ik := keys.Get([]byte(id))
		if ik == nil {
			// Stored before the keys bucket existed: decode the entry.
			b := logs.Get([]byte(id))
			if b == nil {
				continue
			}
			var e model.LogEntry
			if err := json.Unmarshal(b, &e); err != nil {
				continue
			}
			ik = indexKey(model.QualifiedName(e.Namespace, e.Function), e.Time, e.RequestID)
		}
		ik = append([]byte(nil), ik...) // ik points into a page the deletes may change
		if err := index.Delete(ik); err != nil {
			return err
		}
		if err := keys.Delete([]byte(id)); err != nil {
			return err
		}
		if err := logs.Delete(ik); err != nil {
			return err
		}
		if err := logs.Delete([]byte(id)); err != nil { // stored by request id
			return err
		}
	}
	return nil
}
