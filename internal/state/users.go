package state

import (
	"fmt"
	"sort"
	"time"

	"nimbus/internal/model"
)

// maxSessionsPerUser bounds one user's live sessions; a login past it ends
// the oldest.
const maxSessionsPerUser = 64

// PutUser stores a user. With create it refuses (false) a name already
// taken; without, it refuses one that does not exist (ErrNotFound) and,
// since the password may have changed, ends the user's sessions except
// keep's (the session that made the change, if any).
func (s *Store) PutUser(u model.User, create bool, keep string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.users[u.Name]
	if create && exists {
		return false, nil
	}
	if !create {
		if !exists {
			return false, fmt.Errorf("user %q: %w", u.Name, ErrNotFound)
		}
		u.CreatedAt = old.CreatedAt
		for id, sess := range s.sessions {
			if sess.User == u.Name && id != keep {
				delete(s.sessions, id)
			}
		}
	}
	s.users[u.Name] = &u
	return true, nil
}

// DeleteUser removes a user and ends every session of theirs.
func (s *Store) DeleteUser(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	delete(s.users, name)
	for id, sess := range s.sessions {
		if sess.User == name {
			delete(s.sessions, id)
		}
	}
	return nil
}

// User returns the user with the given name.
func (s *Store) User(name string) (model.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	if !ok {
		return model.User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return *u, nil
}

// Users returns every user, sorted by name.
func (s *Store) Users() []model.User {
	s.mu.RLock()
	out := make([]model.User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, *u)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutSession stores a session of an existing user, or of an existing key
// for a key sign-in (ErrNotFound if it is gone), and drops the sessions
// expired as of now. A user (or key) past maxSessionsPerUser loses their
// oldest sessions.
func (s *Store) PutSession(sess model.Session, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, v := range s.sessions {
		if !now.Before(v.ExpiresAt) {
			delete(s.sessions, id)
		}
	}
	if sess.Key != "" {
		if _, ok := s.keys[sess.Key]; !ok {
			return fmt.Errorf("key %q: %w", sess.Key, ErrNotFound)
		}
	} else if _, ok := s.users[sess.User]; !ok {
		return fmt.Errorf("user %q: %w", sess.User, ErrNotFound)
	}
	var theirs []*model.Session
	for _, v := range s.sessions {
		if v.User == sess.User && v.Key == sess.Key {
			theirs = append(theirs, v)
		}
	}
	if over := len(theirs) + 1 - maxSessionsPerUser; over > 0 {
		sort.Slice(theirs, func(i, j int) bool {
			if !theirs[i].CreatedAt.Equal(theirs[j].CreatedAt) {
				return theirs[i].CreatedAt.Before(theirs[j].CreatedAt)
			}
			return theirs[i].ID < theirs[j].ID
		})
		for _, v := range theirs[:over] {
			delete(s.sessions, v.ID)
		}
	}
	s.sessions[sess.ID] = &sess
	return nil
}

// DeleteSession ends a session (it is not an error if it has ended).
func (s *Store) DeleteSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
}

// Session returns the session with the given ID.
func (s *Store) Session(id string) (model.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.sessions[id]
	if !ok {
		return model.Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	return *v, nil
}

// Sessions returns every stored session, sorted by ID.
func (s *Store) Sessions() []model.Session {
	s.mu.RLock()
	out := make([]model.Session, 0, len(s.sessions))
	for _, v := range s.sessions {
		out = append(out, *v)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
