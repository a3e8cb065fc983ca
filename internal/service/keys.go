package service

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// KeyRequest asks for a new API key.
type KeyRequest struct {
	Role      string  `json:"role"`
	Namespace string  `json:"namespace"`
	Expires   string  `json:"expires"` // "30d", "12h", "90m"; "" for never
	RateLimit float64 `json:"rate_limit"`
	Note      string  `json:"note"`
}

// Keys lists every API key (their hashes only).
func (s *Service) Keys() []model.Key { return s.store.Keys() }

// MaxRateLimit bounds a key's rate limit (requests per second): beyond
// it a limit limits nothing, and is more likely a typing slip.
const MaxRateLimit = 1_000_000

// CreateKey makes a key and returns it with its token, the only time the
// token exists outside the caller's hands.
func (s *Service) CreateKey(ctx context.Context, req KeyRequest) (string, model.Key, error) {
	if !slices.Contains(auth.Roles, req.Role) {
		return "", model.Key{}, state.Errorf(state.ErrInvalid, "role %q is not one of %s", req.Role, strings.Join(auth.Roles, ", "))
	}
	if !(req.RateLimit >= 0 && req.RateLimit <= MaxRateLimit) { // NaN fails both
		return "", model.Key{}, state.Errorf(state.ErrInvalid, "rate_limit must be 0 (the server's default) or up to %d requests per second", MaxRateLimit)
	}
	switch {
	case req.Namespace != "" && (req.Role == auth.RoleAdmin || req.Role == auth.RoleWorker):
		return "", model.Key{}, state.Errorf(state.ErrInvalid, "a %s key belongs to no namespace (admin keys act in every one, choosing with %s)", req.Role, client.HeaderNamespace)
	case req.Role == auth.RoleDeveloper || req.Role == auth.RoleViewer:
		req.Namespace = model.NamespaceOf(req.Namespace)
		if _, err := s.store.Namespace(req.Namespace); err != nil {
			return "", model.Key{}, err
		}
	}
	opts := auth.KeyOptions{Role: req.Role, Namespace: req.Namespace, Note: req.Note, RateLimit: req.RateLimit}
	if req.Expires != "" {
		d, err := parseExpiry(req.Expires)
		if err != nil {
			return "", model.Key{}, state.Errorf(state.ErrInvalid, "expires: %v", err)
		}
		opts.ExpiresAt = time.Now().UTC().Add(d)
	}
	return s.issueKey(ctx, opts)
}

// issueKey commits a new key (or join token) with opts as they are.
func (s *Service) issueKey(ctx context.Context, opts auth.KeyOptions) (string, model.Key, error) {
	return auth.CreateKeyWith(ctx, s.d.Control, opts)
}

// parseExpiry reads "30d", "12h" or "90m" (a Go duration, plus days).
func parseExpiry(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30d or 12h", v)
	}
	return d, nil
}

// RevokeKey deletes key id for the caller whose key is callerID; every
// server refuses the key once the deletion is applied there. A key cannot
// revoke itself (ErrConflict).
func (s *Service) RevokeKey(ctx context.Context, callerID, id string) error {
	if id == callerID {
		return state.Errorf(state.ErrConflict, "a key cannot revoke itself: use another admin key")
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteKey{ID: id})
	return err
}

// Audit lists the newest limit audit entries.
func (s *Service) Audit(limit int) []model.AuditEntry { return s.store.Audit(limit) }

// CreateJoinToken makes a join token for a worker ("" or "worker") or a
// server, valid for ttl ("": an hour): a key that opens no route, which a
// new node presents to have its certificate signed.
func (s *Service) CreateJoinToken(ctx context.Context, role, ttl, note string) (string, model.Key, error) {
	opts := auth.KeyOptions{Note: note}
	switch role {
	case "", "worker":
		opts.Role = auth.RoleJoinWorker
	case "server":
		opts.Role = auth.RoleJoinServer
	default:
		return "", model.Key{}, state.Errorf(state.ErrInvalid, "role %q: a join token is for a worker or a server", role)
	}
	d := time.Hour
	if ttl != "" {
		var err error
		if d, err = parseExpiry(ttl); err != nil {
			return "", model.Key{}, state.Errorf(state.ErrInvalid, "ttl: %v", err)
		}
	}
	opts.ExpiresAt = time.Now().UTC().Add(d)
	if opts.Note == "" {
		opts.Note = "join token for a " + strings.TrimPrefix(opts.Role, "join-")
	}
	return s.issueKey(ctx, opts)
}
