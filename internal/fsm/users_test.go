package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

const fakeHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

func user(name, role string) model.User {
	return model.User{Name: name, Role: role, Namespace: "ns-" + name, PasswordHash: fakeHash, CreatedAt: t0}
}

func session(id, name string, created time.Time) model.Session {
	return model.Session{ID: id, SecretHash: "ab" + id, User: name, CreatedAt: created, ExpiresAt: created.Add(12 * time.Hour)}
}

func TestPutUserCreatesOnceAndUpdatesOnlyWhatExists(t *testing.T) {
	f, s := newFSM()
	if res := apply(t, f, PutUserType, PutUser{User: user("ada", "viewer"), Create: true}); res != (PutUserResult{}) {
		t.Fatalf("create: %#v", res)
	}
	dup := user("ada", "admin")
	if res := apply(t, f, PutUserType, PutUser{User: dup, Create: true}); res != (PutUserResult{Conflict: true}) {
		t.Fatalf("second create: %#v", res)
	}
	if u, _ := s.User("ada"); u.Role != "viewer" {
		t.Fatalf("a refused create changed the user: %+v", u)
	}
	if res := apply(t, f, PutUserType, PutUser{User: user("bob", "viewer")}); !errors.Is(res.(error), state.ErrNotFound) {
		t.Fatalf("updating a user that does not exist: %#v", res)
	}
	if _, err := s.User("bob"); err == nil {
		t.Fatal("an update created a user")
	}
	// An update (a new password) keeps created_at and ends the sessions
	// but the one named.
	apply(t, f, PutSessionType, PutSession{Session: session("s1", "ada", t0), Now: t0})
	apply(t, f, PutSessionType, PutSession{Session: session("s2", "ada", t0), Now: t0})
	upd := user("ada", "viewer")
	upd.PasswordHash, upd.CreatedAt, upd.UpdatedAt = fakeHash+"x", t0.Add(time.Hour), t0.Add(time.Hour)
	if res := apply(t, f, PutUserType, PutUser{User: upd, Keep: "s2"}); res != (PutUserResult{}) {
		t.Fatalf("update: %#v", res)
	}
	u, _ := s.User("ada")
	if u.PasswordHash != fakeHash+"x" || !u.CreatedAt.Equal(t0) || !u.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("updated user %+v", u)
	}
	if _, err := s.Session("s1"); err == nil {
		t.Fatal("a password change left another session alive")
	}
	if _, err := s.Session("s2"); err != nil {
		t.Fatal("a password change ended the session that made it")
	}
}

func TestDeleteUserEndsTheirSessions(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutUserType, PutUser{User: user("ada", "viewer"), Create: true})
	apply(t, f, PutUserType, PutUser{User: user("bob", "viewer"), Create: true})
	apply(t, f, PutSessionType, PutSession{Session: session("s1", "ada", t0), Now: t0})
	apply(t, f, PutSessionType, PutSession{Session: session("s2", "bob", t0), Now: t0})
	if res := apply(t, f, DeleteUserType, DeleteUser{Name: "ada"}); res != (None{}) {
		t.Fatalf("delete: %v", res)
	}
	if _, err := s.User("ada"); err == nil {
		t.Fatal("ada is still there")
	}
	if _, err := s.Session("s1"); err == nil {
		t.Fatal("ada's session outlived her")
	}
	if _, err := s.Session("s2"); err != nil {
		t.Fatal("bob's session ended with ada")
	}
	if res := apply(t, f, DeleteUserType, DeleteUser{Name: "ada"}); !errors.Is(res.(error), state.ErrNotFound) {
		t.Fatalf("deleting again: %v", res)
	}
	// A session for a user that is gone is refused.
	if res := apply(t, f, PutSessionType, PutSession{Session: session("s3", "ada", t0), Now: t0}); !errors.Is(res.(error), state.ErrNotFound) {
		t.Fatalf("session of a deleted user: %v", res)
	}
}

func TestSessionsExpireAndAreBoundedPerUser(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutUserType, PutUser{User: user("ada", "viewer"), Create: true})
	apply(t, f, PutSessionType, PutSession{Session: session("old", "ada", t0), Now: t0})
	later := t0.Add(13 * time.Hour)
	apply(t, f, PutSessionType, PutSession{Session: session("new", "ada", later), Now: later})
	if _, err := s.Session("old"); err == nil {
		t.Fatal("an expired session was kept")
	}
	for i := range 100 {
		id := string(rune('a'+i/26)) + string(rune('a'+i%26))
		apply(t, f, PutSessionType, PutSession{Session: session(id, "ada", later.Add(time.Duration(i)*time.Second)), Now: later})
	}
	if n := len(s.Sessions()); n != 64 {
		t.Fatalf("%d sessions kept, want 64", n)
	}
	if _, err := s.Session("dv"); err != nil { // the newest
		t.Fatal("the newest session was dropped")
	}
	apply(t, f, DeleteSessionType, DeleteSession{ID: "dv"})
	if _, err := s.Session("dv"); err == nil {
		t.Fatal("a deleted session is still there")
	}
	if res := apply(t, f, DeleteSessionType, DeleteSession{ID: "dv"}); res != (None{}) {
		t.Fatalf("ending an ended session: %v", res)
	}
}

func TestUsersAndSessionsSurviveASnapshot(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutUserType, PutUser{User: user("ada", "admin"), Create: true})
	apply(t, f, PutSessionType, PutSession{Session: session("s1", "ada", t0), Now: t0})
	s2 := restored(t, f)
	u, err := s2.User("ada")
	want, _ := s.User("ada")
	if err != nil || u != want {
		t.Fatalf("restored user %+v, want %+v (%v)", u, want, err)
	}
	sess, err := s2.Session("s1")
	if err != nil || sess != session("s1", "ada", t0) {
		t.Fatalf("restored session %+v (%v)", sess, err)
	}
	// A snapshot from before users existed restores to none.
	f3, s3 := newFSM()
	if err := f3.Restore(io.NopCloser(bytes.NewReader([]byte(`{"functions":[]}`)))); err != nil {
		t.Fatal(err)
	}
	apply(t, f3, PutUserType, PutUser{User: user("bob", "viewer"), Create: true})
	if len(s3.Users()) != 1 {
		t.Fatal("a store restored from an old snapshot cannot take users")
	}
}

func TestPutUserResultDecodesAfterForwarding(t *testing.T) {
	f, _ := newFSM()
	apply(t, f, PutUserType, PutUser{User: user("ada", "viewer"), Create: true})
	res := apply(t, f, PutUserType, PutUser{User: user("ada", "viewer"), Create: true})
	b, _ := json.Marshal(res)
	got, err := DecodeResult(PutUserType, b)
	if err != nil || got != (PutUserResult{Conflict: true}) {
		t.Fatalf("got %#v %v", got, err)
	}
	for _, ct := range []CommandType{PutUserType, DeleteUserType, PutSessionType, DeleteSessionType} {
		if ct.String() == "" || ct.String()[0] == 'C' {
			t.Errorf("command %d has no name", ct)
		}
	}
}
