// Package auth owns API keys: their format, creation and checking, as
// bearer tokens or as AWS SigV4 credentials derived from them. Only a
// key's SHA-256 is ever stored (in the replicated state); the key itself
// exists once, when it is created.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/sigv4"
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

// sigV4Label is the message SigV4Secret authenticates; a new derivation
// would take a new label.
const sigV4Label = "nimbus sigv4 secret v1"

// SigV4Service is the service Nimbus's SigV4 credentials are scoped to:
// it serves the AWS Lambda API.
const SigV4Service = "lambda"

// SigV4Secret returns the AWS secret access key of the key whose stored
// hash is secretHash (hex SHA-256 of its secret): the standard base64 of
// the first 30 bytes of HMAC-SHA256(key = the hash's bytes, message =
// "nimbus sigv4 secret v1"), 40 characters like an AWS secret. Its access
// key id is the key's id. It returns "" for a hash that is not hex.
//
// Deriving it from the stored hash means nothing new is stored, and a key
// that is revoked or expires loses its SigV4 secret with it. It also means
// what any scheme where the server checks an HMAC means: whoever reads the
// stored state (a snapshot, raft.db, a backup) can compute this secret and
// sign SigV4 requests as the key, while the bearer token itself stays
// unrecoverable from the state. Treat the state as holding these secrets.
func SigV4Secret(secretHash string) string {
	k, err := hex.DecodeString(secretHash)
	if err != nil || len(k) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(sigV4Label))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)[:30])
}

// SigV4SecretOfToken returns the AWS credentials of a full key
// "nimbus_<id>_<secret>", computed locally (for the CLI): the access key
// id is the key's id, the secret SigV4Secret of the secret's hash.
func SigV4SecretOfToken(token string) (accessKeyID, secret string, err error) {
	id, s, err := ParseToken(strings.TrimSpace(token))
	if err != nil {
		return "", "", err
	}
	return id, SigV4Secret(hashSecret(s)), nil
}

// CheckSigV4 returns the stored key that signed r (whose body the caller
// has read) with AWS Signature Version 4 for the service "lambda", as of
// now; the key's role and namespace apply to the request exactly as a
// bearer key's do. Its errors wrap sigv4's sentinels (sigv4.AWSError maps
// them to AWS's error types): sigv4.ErrMissing when r is not SigV4 at
// all, so the caller can fall back to Bearer; sigv4.ErrUnknownKey for an
// id no key has and for an expired key.
func CheckSigV4(store *state.Store, r *http.Request, body []byte, now time.Time) (model.Key, error) {
	var key model.Key
	_, err := sigv4.Verify(r, body, now, SigV4Service, func(id string) (string, bool) {
		k, err := store.Key(id)
		if err != nil {
			return "", false
		}
		key = k
		return SigV4Secret(k.SecretHash), true
	})
	if err != nil {
		return model.Key{}, err
	}
	if !key.ExpiresAt.IsZero() && now.After(key.ExpiresAt) {
		return model.Key{}, fmt.Errorf("%w: the key %s expired at %s: use another key", sigv4.ErrUnknownKey, key.ID, key.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return key, nil
}
