package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// control is a one-server control plane without Raft: the real FSM and
// store, each command applied as it would be once committed.
type control struct {
	fsm.Writer
	store *state.Store
}

func (c control) Store() *state.Store { return c.store }

// newService returns a Service over a fresh store, and the store.
func newService(t *testing.T, d Deps) (*Service, *state.Store) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := state.New()
	logs, err := logstore.Open(filepath.Join(t.TempDir(), "logs.db"), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	d.Control, d.Logs, d.Retention, d.Log = control{fsm.Direct(fsm.New(store, log)), store}, logs, model.DefaultRetention(), log
	s := New(d)
	t.Cleanup(s.Close)
	return s, store
}

// stored puts a function straight through the FSM, as a deploy commits it.
func stored(t *testing.T, s *Service, ns, name string) {
	t.Helper()
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128, Timeout: model.Duration(3 * time.Second)},
		Namespace: ns, CodeSHA256: "aa"}
	if _, err := fsm.Apply(context.Background(), s.d.Control, fsm.UpsertFunction{Function: fn, Now: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
}

func TestBadRequestsAreRefusedWithTheirKindAndChangeNothing(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Deps{})
	stored(t, s, "default", "f")
	cases := []struct {
		name string
		call func() error
		kind error
		says string
	}{
		{"a schedule without a function", func() error {
			_, _, err := s.PutSchedule(ctx, "default", model.Schedule{Name: "x", Expression: "@every 1s"})
			return err
		}, state.ErrInvalid, "needs a function"},
		{"a schedule with a bad expression", func() error {
			_, _, err := s.PutSchedule(ctx, "default", model.Schedule{Name: "x", Function: "f", Expression: "not cron"})
			return err
		}, state.ErrInvalid, "fields"},
		{"a schedule of an unknown function", func() error {
			_, _, err := s.PutSchedule(ctx, "default", model.Schedule{Name: "x", Function: "nope", Expression: "@every 1s"})
			return err
		}, state.ErrNotFound, "nope"},
		{"a subscription on an unknown condition", func() error {
			_, err := s.Subscribe(ctx, "default", model.Subscription{On: []string{"sometimes"}, Webhook: "http://127.0.0.1:1/"})
			return err
		}, state.ErrInvalid, "sometimes"},
		{"an e-mail subscription on a lone server without a relay", func() error {
			_, err := s.Subscribe(ctx, "default", model.Subscription{On: []string{"failure"}, Email: "ops@example.com"})
			return err
		}, state.ErrInvalid, "--smtp-addr"},
		{"an unknown subscription removed", func() error { return s.Unsubscribe(ctx, "default", "sub-x") }, state.ErrNotFound, "sub-x"},
		{"a key of an unknown role", func() error {
			_, _, err := s.CreateKey(ctx, KeyRequest{Role: "boss"})
			return err
		}, state.ErrInvalid, "boss"},
		{"a key that expires in no time", func() error {
			_, _, err := s.CreateKey(ctx, KeyRequest{Role: "viewer", Expires: "0d"})
			return err
		}, state.ErrInvalid, "expires"},
		{"a key revoking itself", func() error { return s.RevokeKey(ctx, "k1", "k1") }, state.ErrConflict, "itself"},
		{"a namespace with a negative concurrency", func() error {
			_, _, err := s.PutNamespace(ctx, model.Namespace{Name: "t", Concurrency: -1})
			return err
		}, state.ErrInvalid, "concurrency"},
		{"redriving nothing named", func() error { _, err := s.Redrive(ctx, "default", nil, false, ""); return err }, state.ErrInvalid, "name the dead letters"},
		{"redriving an unknown dead letter", func() error { _, err := s.Redrive(ctx, "default", []string{"r1"}, false, ""); return err }, state.ErrNotFound, "r1"},
		{"a user with a short password", func() error {
			_, err := s.CreateUser(ctx, UserRequest{Name: "ada", Role: "viewer", Password: "short"})
			return err
		}, state.ErrInvalid, "8 characters"},
		{"a user deleting themself", func() error { return s.DeleteUser(ctx, "user:ada", "ada") }, state.ErrConflict, "themself"},
		{"a viewer changing another's password", func() error {
			return s.SetPassword(ctx, Caller{Key: model.Key{ID: "k2", Role: "viewer"}}, "ada", "long-enough-pw", "")
		}, ErrForbidden, "only an admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want an error of kind %v saying %q", err, c.kind, c.says)
			}
		})
	}
	if len(store.Schedules("default")) != 0 || len(store.Subscriptions()) != 0 || len(store.Keys()) != 0 || len(store.Users()) != 0 {
		t.Fatalf("a refused request stored something: %d schedules, %d subscriptions, %d keys, %d users",
			len(store.Schedules("default")), len(store.Subscriptions()), len(store.Keys()), len(store.Users()))
	}
}

func TestRemovingAFunctionANamedScheduleNeedsForceAndRemovesBoth(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Deps{Placer: noPlacer{}})
	stored(t, s, "default", "f")
	if _, _, err := s.PutSchedule(ctx, "default", model.Schedule{Name: "tick", Function: "f", Expression: "@every 1h"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.RemoveFunction(ctx, "default", "f", false)
	if !errors.Is(err, state.ErrConflict) || !strings.Contains(err.Error(), "tick") {
		t.Fatalf("removing without force: %v, want a conflict naming the schedule", err)
	}
	if _, err := store.Function("default/f"); err != nil {
		t.Fatalf("the refused removal removed the function: %v", err)
	}
	out, err := s.RemoveFunction(ctx, "default", "f", true)
	if err != nil || out.Dependents == nil || len(store.Schedules("default")) != 0 {
		t.Fatalf("removing with force: %+v %v; schedules left %d", out, err, len(store.Schedules("default")))
	}
}

func TestANamespaceIsRemovedOnlyOnceEmpty(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Deps{Placer: noPlacer{}})
	if _, created, err := s.PutNamespace(ctx, model.Namespace{Name: "team"}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	stored(t, s, "team", "g")
	if err := s.DeleteNamespace(ctx, "team"); !errors.Is(err, state.ErrNotEmpty) {
		t.Fatalf("removing a namespace that holds a function: %v, want ErrNotEmpty", err)
	}
	if _, err := s.RemoveFunction(ctx, "team", "g", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace(ctx, "team"); err != nil {
		t.Fatalf("removing the emptied namespace: %v", err)
	}
}

// noPlacer is a placer with no workers: removal retires nothing.
type noPlacer struct{}

func (noPlacer) Runtimes() []string            { return nil }
func (noPlacer) Offers() []model.RuntimeOffer  { return nil }
func (noPlacer) Prefetch(model.Function)       {}
func (noPlacer) Provision(model.Function, int) {}
func (noPlacer) Retire(string)                 {}
func (noPlacer) Run(context.Context, worker.RunSpec) (worker.RunConn, error) {
	return nil, placement.ErrNoWorkers
}

func TestARecordAddedAndWaitedForIsInTheStoreWhenTheWaitEnds(t *testing.T) {
	s, store := newService(t, Deps{})
	rec := model.Invocation{ID: "r1", Namespace: "default", Function: "f", Trigger: "source:q", Status: model.StatusSuccess, Start: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.AddRecordAndWait(ctx, rec, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Record("r1"); err != nil || got.Trigger != "source:q" {
		t.Fatalf("the record waited for is not stored: %+v %v", got, err)
	}
	done, cancelled := context.WithCancel(context.Background())
	cancelled()
	if err := s.AddRecordAndWait(done, model.Invocation{ID: "r2", Function: "f"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a wait whose context ended: %v", err)
	}
}
