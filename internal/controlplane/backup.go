package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot takes a Raft snapshot of the state as applied here now and
// opens it: its log position, its size and its contents, as Persist
// wrote them.
// When nothing was applied since the last snapshot, that one is opened.
// The caller closes the reader.
func (n *Node) Snapshot() (index, term uint64, size int64, contents io.ReadCloser, err error) {
	f := n.raft.Snapshot()
	err = f.Error()
	if err == nil {
		meta, rc, err := f.Open()
		if err != nil {
			return 0, 0, 0, nil, err
		}
		return meta.Index, meta.Term, meta.Size, rc, nil
	}
	if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return 0, 0, 0, nil, err
	}
	list, err := n.snaps.List()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if len(list) == 0 {
		return 0, 0, 0, nil, errors.New("there is no snapshot to open yet")
	}
	meta, rc, err := n.snaps.Open(list[0].ID)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return meta.Index, meta.Term, meta.Size, rc, nil
}

// Restore replaces the cluster's state with contents, a snapshot as
// Snapshot opens it: the leader installs it as a new snapshot past its
// log, and followers receive it as they would any snapshot (Raft's user
// restore). Only the leader restores (ErrNotLeader elsewhere). What was
// written since the snapshot was taken is gone.
func (n *Node) Restore(contents []byte, timeout time.Duration) error {
	if n.raft.State() != raft.Leader {
		return fmt.Errorf("%w: only the leader restores a snapshot", ErrNotLeader)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(contents))}
	return n.raft.Restore(meta, bytes.NewReader(contents), timeout)
}
