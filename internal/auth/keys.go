// Package auth owns API keys: their format, creation and checking. Only
// a key's SHA-256 is ever stored (in the replicated state); the key
// itself exists once, when it is created.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// ErrUnauthorized is returned for a missing, malformed or unknown key.
var ErrUnauthorized = errors.New("missing or invalid API key")

// Roles a key can have.
const (
	RoleAdmin     = "admin"     // everything, including keys and the cluster
	RoleDeveloper = "developer" // deploy, update, delete, invoke, schedule; read everything
	RoleViewer    = "viewer"    // read only: list, get, logs, records
	RoleWorker    = "worker"    // internal RPC only: registration, heartbeats, code
)

// Roles of join tokens (see internal/pki): they enrol a node once, for a
// certificate of the cluster CA, and open no API route.
const (
	RoleJoinWorker = "join-worker"
	RoleJoinServer = "join-server"
)

// Roles lists the valid roles of API keys.
var Roles = []string{RoleAdmin, RoleDeveloper, RoleViewer, RoleWorker}

// KeyOptions are a new key's settings.
type KeyOptions struct {
	Role      string
	Namespace string // non-admin keys: the one namespace they act in
	Note      string
	ExpiresAt time.Time // zero: never
	RateLimit float64   // requests/s; 0: the server's default
}

// NewToken makes a new API key, "nimbus_<12 hex id>_<64 hex secret>"
// (256 random bits of secret).
func NewToken() string {
	idb := make([]byte, 6)
	sec := make([]byte, 32)
	rand.Read(idb)
	rand.Read(sec)
	return "nimbus_" + hex.EncodeToString(idb) + "_" + hex.EncodeToString(sec)
}

// CreateKey makes a new API key, commits its hash and returns the key.
func CreateKey(ctx context.Context, cp fsm.Writer, role, note string) (string, error) {
	token := NewToken()
	return token, PutKey(ctx, cp, token, role, note)
}

// CreateKeyWith makes a key with options; it returns the key and its
// stored form.
func CreateKeyWith(ctx context.Context, cp fsm.Writer, o KeyOptions) (string, model.Key, error) {
	token := NewToken()
	id, secret, _ := ParseToken(token)
	key := model.Key{ID: id, SecretHash: hashSecret(secret), Role: o.Role, Namespace: o.Namespace, CreatedAt: time.Now().UTC(),
		Note: o.Note, ExpiresAt: o.ExpiresAt, RateLimit: o.RateLimit}
	if _, err := fsm.Apply(ctx, cp, fsm.PutKey{Key: key}); err != nil {
		return "", model.Key{}, err
	}
	return token, key, nil
}

// PutKey commits the hash of a given key (for an operator-chosen key,
// such as a cluster's bootstrap token).
func PutKey(ctx context.Context, cp fsm.Writer, token, role, note string) error {
	id, secret, err := ParseToken(token)
	if err != nil {
		return err
	}
	key := model.Key{ID: id, SecretHash: hashSecret(secret), Role: role, CreatedAt: time.Now().UTC(), Note: note}
	_, err = fsm.Apply(ctx, cp, fsm.PutKey{Key: key})
	return err
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// secretMatches reports whether secret is the one whose hex SHA-256 is
// stored, comparing in constant time (keys and sessions alike).
func secretMatches(stored, secret string) bool {
	want, err := hex.DecodeString(stored)
	sum := sha256.Sum256([]byte(secret))
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}

// ParseToken splits a key into its public id and its secret.
func ParseToken(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, "nimbus_")
	if !ok {
		return "", "", errors.New("an API key starts with nimbus_")
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || id == "" || len(secret) < 32 {
		return "", "", errors.New("an API key is nimbus_<id>_<secret of at least 32 characters>")
	}
	return id, secret, nil
}

// Check returns the stored key that token is, or ErrUnauthorized. It
// costs a map lookup and a constant-time comparison.
func Check(store *state.Store, token string) (model.Key, error) {
	id, secret, err := ParseToken(strings.TrimSpace(token))
	if err != nil {
		return model.Key{}, ErrUnauthorized
	}
	key, err := store.Key(id)
	if err != nil {
		return model.Key{}, ErrUnauthorized
	}
	if !secretMatches(key.SecretHash, secret) {
		return model.Key{}, ErrUnauthorized
	}
	if !key.ExpiresAt.IsZero() && time.Now().After(key.ExpiresAt) {
		return model.Key{}, ErrUnauthorized
	}
	return key, nil
}

// Bearer extracts the token from an Authorization header value.
func Bearer(header string) string {
	t, _ := strings.CutPrefix(header, "Bearer ")
	return strings.TrimSpace(t)
}
