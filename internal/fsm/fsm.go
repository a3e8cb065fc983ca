package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"

	"nimbus/internal/state"
	"nimbus/pkg/client"
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

// ApplyCommand applies one decoded command. Exported for tests.
func (f *FSM) ApplyCommand(t CommandType, body []byte) any {
	switch t {
	case UpsertFunctionType:
		var c UpsertFunction
		if err := decode(t, body, &c); err != nil {
			return err
		}
		fn, created := f.store.UpsertFunction(c.Function, c.Now)
		return UpsertFunctionResult{Function: fn, Created: created}
	case DeleteFunctionType:
		var c DeleteFunction
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteFunction(client.QualifiedName(c.Namespace, c.Name))
	case RemoveFunctionType:
		var c RemoveFunction
		if err := decode(t, body, &c); err != nil {
			return err
		}
		deps, deleted, err := f.store.RemoveFunction(client.QualifiedName(c.Namespace, c.Name), c.Force)
		if err != nil {
			return err
		}
		return RemoveFunctionResult{Deleted: deleted, Dependents: deps}
	case RecordInvocationsType:
		var c RecordInvocations
		var err error
		if len(body) > 0 && (body[0] == recordsV1 || body[0] == recordsV2) {
			c, err = decodeRecords(body)
			if err != nil {
				err = fmt.Errorf("decode %s: %w", t, err)
			}
		} else {
			err = decode(t, body, &c)
		}
		if err != nil {
			return err
		}
		return RecordInvocationsResult{Removed: f.store.AddRecords(c.Records, c.Retention, c.Now)}
	case PutKeyType:
		var c PutKey
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.PutKey(c.Key)
		return nil
	case AuditType:
		var c Audit
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.AddAudit(c.Entries)
		return nil
	case DeleteKeyType:
		var c DeleteKey
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteKey(c.ID)
	case PutUserType, DeleteUserType, PutSessionType, DeleteSessionType:
		return f.applyUser(t, body)
	case PutServerType:
		var c PutServer
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.PutServer(c.Server)
		return nil
	case PutSettingType:
		var c PutSetting
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.PutSetting(c.Key, c.Value, c.IfAbsent)
		return nil
	case PutSubscriptionType:
		var c PutSubscription
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.PutSubscription(c.Subscription)
		return nil
	case DeleteSubscriptionType:
		var c DeleteSubscription
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteSubscription(c.ID)
	case PutNamespaceType:
		var c PutNamespace
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return PutNamespaceResult{Created: f.store.PutNamespace(c.Namespace)}
	case DeleteNamespaceType:
		var c DeleteNamespace
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteNamespace(c.Name)
	case EnqueueType, LeaseType, FinishType, RedriveType:
		return f.applyQueue(t, body)
	case PutScheduleType, DeleteScheduleType, EnableScheduleType, FireScheduleType, FireSchedulesType:
		return f.applySchedule(t, body)
	}
	err := fmt.Errorf("unknown command type %d", t)
	f.log.Error("skipping log entry", "err", err)
	return err
}

func decode(t CommandType, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", t, err)
	}
	return nil
}

// Snapshot captures the store as of the last applied entry (Raft calls it
// between Applies); Persist then writes the copy while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.Capture()}, nil
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
