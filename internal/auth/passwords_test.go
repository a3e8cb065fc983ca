package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPasswordIsArgon2idPHC(t *testing.T) {
	h := HashPassword("correct horse")
	m := phc.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("%q is not an argon2id PHC string", h)
	}
	if m[1] != "19456" || m[2] != "2" || m[3] != "1" {
		t.Errorf("parameters m=%s t=%s p=%s, want OWASP's 19456, 2, 1", m[1], m[2], m[3])
	}
	if strings.Contains(h, "correct horse") {
		t.Error("the hash holds the password")
	}
	if h2 := HashPassword("correct horse"); h2 == h {
		t.Error("two hashes of one password are equal: no random salt")
	}
}

func TestVerifyPassword(t *testing.T) {
	h := HashPassword("correct horse")
	for _, c := range []struct {
		pw   string
		want bool
	}{
		{"correct horse", true},
		{"correct horsE", false},
		{"correct hors", false},
		{"", false},
		{"correct horse ", false},
	} {
		if got := VerifyPassword(h, c.pw); got != c.want {
			t.Errorf("VerifyPassword(%q) = %v, want %v", c.pw, got, c.want)
		}
	}
}

func TestVerifyUsesTheHashsOwnParameters(t *testing.T) {
	h := hashWith("s3cret-pass", Argon2Params{Memory: 64, Time: 1, Threads: 2})
	if !strings.Contains(h, "$m=64,t=1,p=2$") {
		t.Fatalf("hash %q", h)
	}
	if !VerifyPassword(h, "s3cret-pass") || VerifyPassword(h, "s3cret-pasS") {
		t.Fatal("a hash with other parameters does not verify by them")
	}
}

func TestMalformedHashesMatchNothing(t *testing.T) {
	good := hashWith("pw-pw-pw-pw", Argon2Params{Memory: 64, Time: 1, Threads: 1})
	parts := strings.Split(good, "$")
	for _, bad := range []string{
		"",
		"pw-pw-pw-pw",
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=99999999", 1), // more memory than a verifier gives
		strings.Replace(good, "t=1", "t=0", 1),
		strings.Join(parts[:5], "$"),
		strings.Replace(good, parts[4], "!!", 1),
	} {
		if VerifyPassword(bad, "pw-pw-pw-pw") {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
}

func newStore(t *testing.T) (*state.Store, fsm.Writer) {
	t.Helper()
	s := state.New()
	return s, fsm.Direct(fsm.New(s, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

func TestLoginAnswersAlikeForAWrongNameAndAWrongPassword(t *testing.T) {
	store, cp := newStore(t)
	u := model.User{Name: "ada", Role: RoleViewer, PasswordHash: HashPassword("lovelace-1815"), CreatedAt: time.Now()}
	if _, err := fsm.Apply(context.Background(), cp, fsm.PutUser{User: u, Create: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := Login(store, "ada", "lovelace-1815"); err != nil || got.Name != "ada" {
		t.Fatalf("right password: %+v %v", got, err)
	}
	_, errPw := Login(store, "ada", "babbage-1791")
	_, errName := Login(store, "charles", "lovelace-1815")
	if !errors.Is(errPw, ErrBadLogin) || !errors.Is(errName, ErrBadLogin) || errPw.Error() != errName.Error() {
		t.Fatalf("wrong password: %v; wrong name: %v", errPw, errName)
	}
}

func TestSessions(t *testing.T) {
	store, cp := newStore(t)
	ctx := context.Background()
	u := model.User{Name: "ada", Role: RoleDeveloper, Namespace: "team-a", PasswordHash: HashPassword("lovelace-1815")}
	fsm.Apply(ctx, cp, fsm.PutUser{User: u, Create: true})
	now := time.Now().UTC()
	token, sess, err := StartSession(ctx, cp, "ada", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 16+1+64 || !sess.ExpiresAt.Equal(now.Add(SessionTTL)) {
		t.Fatalf("token %q, session %+v", token, sess)
	}
	got, p, err := CheckSession(store, token)
	if err != nil || got.ID != sess.ID {
		t.Fatalf("check: %+v %+v %v", got, p, err)
	}
	if p.ID != "user:ada" || p.Role != RoleDeveloper || p.Namespace != "team-a" || p.SecretHash != "" {
		t.Fatalf("principal %+v", p)
	}
	for _, bad := range []string{"", token[:len(token)-1] + "0", sess.ID + "_" + strings.Repeat("0", 64), "nope"} {
		if bad == token {
			continue
		}
		if _, _, err := CheckSession(store, bad); !errors.Is(err, ErrNoSession) {
			t.Errorf("token %q accepted", bad)
		}
	}
	for _, s := range store.Sessions() {
		if strings.Contains(s.SecretHash, token[17:]) || strings.Contains(s.ID+s.SecretHash, token[17:]) {
			t.Error("the stored session holds its secret")
		}
	}
	// CSRF: the same for the same session, another for another, and
	// nothing else passes.
	csrf := CSRFToken(token)
	if len(csrf) != 64 || !CheckCSRF(token, csrf) || CheckCSRF(token, "") || CheckCSRF(token, csrf[:63]+"x") {
		t.Fatalf("csrf %q", csrf)
	}
	other, _, _ := StartSession(ctx, cp, "ada", now)
	if CheckCSRF(other, csrf) {
		t.Fatal("one session's CSRF token passes for another")
	}
	// An expired session, and one whose user is gone, are no sessions.
	old, _, _ := StartSession(ctx, cp, "ada", now.Add(-SessionTTL-time.Second))
	if _, _, err := CheckSession(store, old); !errors.Is(err, ErrNoSession) {
		t.Fatal("an expired session was accepted")
	}
	fsm.Apply(ctx, cp, fsm.DeleteUser{Name: "ada"})
	if _, _, err := CheckSession(store, token); !errors.Is(err, ErrNoSession) {
		t.Fatal("a deleted user's session was accepted")
	}
	// A key sign-in acts as its key while the key lives; a worker's key
	// opens no session.
	keyToken, key, err := CreateKeyWith(ctx, cp, KeyOptions{Role: RoleAdmin, Note: "console"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(store, keyToken); err != nil {
		t.Fatal(err)
	}
	ktok, ksess, err := StartKeySession(ctx, cp, key, now)
	if err != nil || ksess.Key != key.ID || ksess.User != "" {
		t.Fatalf("key session %+v %v", ksess, err)
	}
	if _, kp, err := CheckSession(store, ktok); err != nil || kp.ID != key.ID || kp.Role != RoleAdmin || kp.SecretHash != "" {
		t.Fatalf("key session principal %+v %v", kp, err)
	}
	if _, _, err := StartKeySession(ctx, cp, model.Key{ID: "w", Role: RoleWorker}, now); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("a worker key opened a console session: %v", err)
	}
	fsm.Apply(ctx, cp, fsm.DeleteKey{ID: key.ID})
	if _, _, err := CheckSession(store, ktok); !errors.Is(err, ErrNoSession) {
		t.Fatal("a revoked key's session was accepted")
	}
}

func TestValidation(t *testing.T) {
	for _, c := range []struct {
		name, role string
		ok         bool
	}{
		{"ada", "viewer", true},
		{"ada.l_1-x", "admin", true},
		{"Ada", "viewer", false},
		{"1ada", "viewer", false},
		{"", "viewer", false},
		{"ada", "worker", false},
		{"ada", "", false},
		{strings.Repeat("a", 64), "viewer", false},
	} {
		if err := ValidateUser(c.name, c.role); (err == nil) != c.ok {
			t.Errorf("ValidateUser(%q, %q) = %v", c.name, c.role, err)
		}
	}
	if ValidatePassword("1234567") == nil || ValidatePassword("12345678") != nil || ValidatePassword("äöüäöüäö") != nil {
		t.Error("password length is counted wrong")
	}
	if ValidatePassword(strings.Repeat("x", MaxPasswordBytes+1)) == nil {
		t.Error("an over-long password was accepted")
	}
}

// TestNoPasswordOrTokenInTheSnapshot goes through the real hashing and
// session paths and looks for the secrets in what a snapshot writes.
func TestNoPasswordOrTokenInTheSnapshot(t *testing.T) {
	store, cp := newStore(t)
	ctx := context.Background()
	const pw = "Plaintext-Passw0rd"
	u := model.User{Name: "ada", Role: RoleViewer, PasswordHash: HashPassword(pw)}
	fsm.Apply(ctx, cp, fsm.PutUser{User: u, Create: true})
	token, _, err := StartSession(ctx, cp, "ada", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if _, err := store.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.String()
	if !strings.Contains(snap, `"users"`) || !strings.Contains(snap, "$argon2id$") || !strings.Contains(snap, `"sessions"`) {
		t.Fatalf("the snapshot lacks the user or the session: %s", snap)
	}
	_, secret, _ := strings.Cut(token, "_")
	for _, s := range []string{pw, secret, CSRFToken(token)} {
		if strings.Contains(snap, s) {
			t.Errorf("the snapshot holds %q", s)
		}
	}
}
