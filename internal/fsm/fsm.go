package fsm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"

	"nimbus/internal/state"
)

// FSM applies committed commands to a state store. It implements
// raft.FSM.
type FSM struct {
	store *state.Store
	log   *slog.Logger
}

// New returns an FSM that applies to store.
func New(store *state.Store, log *slog.Logger) *FSM {
	return &FSM{store: store, log: log}
}

// Apply applies one committed log entry. It returns the command's result
// or an error value (never panics on a bad entry: it is logged and
// skipped, so one bad entry cannot wedge every server).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	return f.ApplyCommand(CommandType(l.Data[0]), l.Data[1:])
}

// ApplyCommand applies one command of type t with its body. Exported for
// tests.
func (f *FSM) ApplyCommand(t CommandType, body []byte) any {
	e := registry.byType[t]
	if e == nil {
		err := fmt.Errorf("unknown command type %d: written by a newer release?", t)
		f.log.Error("skipping log entry", "err", err)
		return err
	}
	res, err := e.apply(f.store, body)
	var de *decodeError
	if errors.As(err, &de) {
		f.log.Error("skipping log entry", "type", t, "err", err)
	}
	if err != nil {
		return err
	}
	return res
}

// Snapshot captures the store as of the last applied entry (Raft calls it
// between Applies); Persist then writes the copy while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.CaptureUnordered()}, nil
}

// Restore replaces the store's content with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.store.Restore(rc)
}

type fsmSnapshot struct{ snap *state.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
