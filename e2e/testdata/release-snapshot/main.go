// Command release-snapshot makes the Raft snapshot of the replay fixture
// (see ../make-release-data.sh, which copies this file into a checkout of
// the release commit and builds it there, so that the snapshot is written
// by that commit's FSM and state store).
//
// nimbus has no flag to snapshot: Raft snapshots by itself past 4096 new
// entries (controlplane.Start sets SnapshotThreshold). This opens a
// stopped `nimbus dev` data directory the way controlplane.Start does,
// lets Raft replay the log into the release FSM, asks for a snapshot
// (raft.Snapshot: the same FSM.Snapshot and Persist as an automatic
// one) and compacts the log up to it. It then rewrites raft.db and
// logs.db compactly (bbolt.Compact: the same keys and values, without
// the file's preallocated space).
//
// Usage:
//
//	release-snapshot snapshot DATA_DIR  # snapshot, then compact
//	release-snapshot compact DATA_DIR   # compact only
//	release-snapshot list DATA_DIR      # the snapshot and each log entry (JSON bodies in full)
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"nimbus/internal/fsm"
	"nimbus/internal/state"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: release-snapshot snapshot|compact|list DATA_DIR")
		os.Exit(2)
	}
	var err error
	switch data := os.Args[2]; os.Args[1] {
	case "snapshot":
		if err = snapshot(filepath.Join(data, "raft")); err == nil {
			err = compactAll(data)
		}
	case "compact":
		err = compactAll(data)
	case "list":
		err = list(data)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release-snapshot:", err)
		os.Exit(1)
	}
}

func compactAll(data string) error {
	dir := filepath.Join(data, "raft")
	for _, db := range []string{filepath.Join(dir, "raft.db"), filepath.Join(data, "logs.db")} {
		if err := compact(db); err != nil {
			return fmt.Errorf("compact %s: %w", db, err)
		}
	}
	return nil
}

func snapshot(dir string) error {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return err
	}
	defer store.Close()
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: os.Stderr, Level: hclog.Warn})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return err
	}
	// As controlplane.Start with SingleNode, except TrailingLogs: 0
	// compacts every entry the snapshot holds, so that the log keeps only
	// what came after it.
	rc := raft.DefaultConfig()
	rc.LocalID = "dev"
	rc.Logger = hl
	rc.HeartbeatTimeout = 50 * time.Millisecond
	rc.ElectionTimeout = 50 * time.Millisecond
	rc.LeaderLeaseTimeout = 50 * time.Millisecond
	rc.SnapshotThreshold = 1 << 40 // only the snapshot asked for below
	rc.TrailingLogs = 0
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	_, transport := raft.NewInmemTransport("dev")
	r, err := raft.NewRaft(rc, fsm.New(state.New(), log), store, store, snaps, transport)
	if err != nil {
		return err
	}
	defer r.Shutdown()
	deadline := time.Now().Add(30 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			return errors.New("no leadership after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Barrier(30 * time.Second).Error(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if err := r.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	fmt.Printf("snapshot at index %s (term %s); log now %s..%s\n", r.Stats()["last_snapshot_index"], r.Stats()["last_snapshot_term"],
		first(store), r.Stats()["last_log_index"])
	return r.Shutdown().Error()
}

func first(s *raftboltdb.BoltStore) string {
	i, err := s.FirstIndex()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(i)
}

func compact(path string) error {
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, nil)
	if err != nil {
		return err
	}
	if err := bbolt.Compact(dst, src, 1<<20); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	src.Close()
	return os.Rename(tmp, path)
}

// list prints the snapshots and every log entry with its command.
func list(data string) error {
	dir := filepath.Join(data, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	metas, err := snaps.List()
	if err != nil {
		return err
	}
	for _, m := range metas {
		fmt.Printf("snapshot %s: index %d, term %d, %d bytes\n", m.ID, m.Index, m.Term, m.Size)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return err
	}
	defer store.Close()
	lo, _ := store.FirstIndex()
	hi, _ := store.LastIndex()
	for i := lo; i <= hi && i > 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return err
		}
		what, body := l.Type.String(), ""
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			what = fsm.CommandType(l.Data[0]).String()
			if len(l.Data) > 1 && l.Data[1] == '{' {
				body = " " + string(l.Data[1:]) // JSON; RecordInvocations is binary
			}
		}
		fmt.Printf("log %d (term %d): %s, %d bytes%s\n", i, l.Term, what, len(l.Data), body)
	}
	return nil
}
