package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// UserRoles are the roles a user can have (worker is for keys only).
var UserRoles = []string{RoleAdmin, RoleDeveloper, RoleViewer}

// Password length limits, in characters and bytes.
const (
	MinPasswordLen   = 8
	MaxPasswordBytes = 1024
)

// SessionTTL is how long a session lasts after login.
const SessionTTL = 12 * time.Hour

// UserPrefix starts the principal ID of a user's session ("user:NAME"), as
// the gateway's role checks, rate limits and audit log see it.
const UserPrefix = "user:"

// ErrBadLogin is the one answer to a wrong name or a wrong password, so
// that a login does not tell which users exist.
var ErrBadLogin = errors.New("wrong user name or password")

// ErrNoSession is returned for a missing, malformed, unknown or expired
// session token, or one whose user is gone.
var ErrNoSession = errors.New("missing, invalid or expired session")

var userName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,62}$`)

// ValidateUser checks a new user's name and role.
func ValidateUser(name, role string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("user name %q must be 1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter", name)
	}
	if !slices.Contains(UserRoles, role) {
		return fmt.Errorf("role %q is not one of %s", role, strings.Join(UserRoles, ", "))
	}
	return nil
}

// ValidatePassword checks a new password's length.
func ValidatePassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return fmt.Errorf("a password needs at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordBytes {
		return fmt.Errorf("a password may have at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

// Login checks a name and password. A wrong name and a wrong password
// both cost one argon2id hash and both return ErrBadLogin.
func Login(store *state.Store, name, password string) (model.User, error) {
	u, err := store.User(name)
	if err != nil {
		VerifyPassword(decoyHash(), password)
		return model.User{}, ErrBadLogin
	}
	if !VerifyPassword(u.PasswordHash, password) {
		return model.User{}, ErrBadLogin
	}
	return u, nil
}

// StartSession makes a session for user and commits its hash; it returns
// the session token (the cookie's value, which exists only there) and
// the stored session.
func StartSession(ctx context.Context, cp fsm.Writer, user string, now time.Time) (string, model.Session, error) {
	return startSession(ctx, cp, model.Session{User: user, CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}, now)
}

// StartKeySession makes a console session for an API key (a key sign-in:
// an admin who has no user yet). It lasts SessionTTL, or until the key
// expires if that is sooner, and ends when the key is revoked.
func StartKeySession(ctx context.Context, cp fsm.Writer, key model.Key, now time.Time) (string, model.Session, error) {
	if !slices.Contains(UserRoles, key.Role) {
		return "", model.Session{}, ErrBadLogin // worker and join keys open no console
	}
	end := now.Add(SessionTTL)
	if !key.ExpiresAt.IsZero() && key.ExpiresAt.Before(end) {
		end = key.ExpiresAt
	}
	return startSession(ctx, cp, model.Session{Key: key.ID, CreatedAt: now, ExpiresAt: end}, now)
}

func startSession(ctx context.Context, cp fsm.Writer, sess model.Session, now time.Time) (string, model.Session, error) {
	idb := make([]byte, 8)
	sec := make([]byte, 32)
	rand.Read(idb)
	rand.Read(sec)
	id, secret := hex.EncodeToString(idb), hex.EncodeToString(sec)
	sess.ID, sess.SecretHash = id, hashSecret(secret)
	if _, err := fsm.Apply(ctx, cp, fsm.PutSession{Session: sess, Now: now}); err != nil {
		return "", model.Session{}, err
	}
	return id + "_" + secret, sess, nil
}

// parseSession splits a session token into its ID and secret.
func parseSession(token string) (id, secret string, ok bool) {
	id, secret, ok = strings.Cut(token, "_")
	return id, secret, ok && len(id) == 16 && len(secret) == 64
}

// CheckSession returns the live session that token is and the identity
// its requests act as (Principal of its user, or its key), or
// ErrNoSession. Like Check, it costs map lookups and a constant-time
// comparison.
func CheckSession(store *state.Store, token string) (model.Session, model.Key, error) {
	id, secret, ok := parseSession(token)
	if !ok {
		return model.Session{}, model.Key{}, ErrNoSession
	}
	sess, err := store.Session(id)
	if err != nil {
		return model.Session{}, model.Key{}, ErrNoSession
	}
	if !secretMatches(sess.SecretHash, secret) || !time.Now().Before(sess.ExpiresAt) {
		return model.Session{}, model.Key{}, ErrNoSession
	}
	if sess.Key != "" {
		key, err := store.Key(sess.Key)
		if err != nil || !key.ExpiresAt.IsZero() && !time.Now().Before(key.ExpiresAt) {
			return model.Session{}, model.Key{}, ErrNoSession // revoked or expired since
		}
		key.SecretHash = ""
		key.ExpiresAt = sess.ExpiresAt
		return sess, key, nil
	}
	u, err := store.User(sess.User)
	if err != nil {
		return model.Session{}, model.Key{}, ErrNoSession
	}
	return sess, Principal(u, sess), nil
}

// CSRFToken is the anti-CSRF token of a session: an HMAC-SHA256 keyed by
// the session's secret, so it is stored nowhere, any server can compute
// it from the cookie, and no one without the cookie's value can.
func CSRFToken(token string) string {
	id, secret, _ := parseSession(token)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("nimbus csrf v1 " + id))
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckCSRF reports whether got is the session's CSRF token, comparing in
// constant time.
func CheckCSRF(token, got string) bool {
	return got != "" && hmac.Equal([]byte(CSRFToken(token)), []byte(got))
}

// Principal is the key-shaped identity a session gives its requests, so
// that role checks, rate limits and the audit log treat it like a key.
func Principal(u model.User, sess model.Session) model.Key {
	return model.Key{ID: UserPrefix + u.Name, Role: u.Role, Namespace: u.Namespace,
		CreatedAt: sess.CreatedAt, ExpiresAt: sess.ExpiresAt}
}
