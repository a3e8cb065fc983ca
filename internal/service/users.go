package service

import (
	"context"
	"errors"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// ErrForbidden refuses what the caller's identity may not do, whatever
// its key's role allows elsewhere.
var ErrForbidden = errors.New("forbidden")

// Users lists every user (never a password hash).
func (s *Service) Users() []model.User { return s.store.Users() }

// UserRequest asks for a new user, with their password in clear.
type UserRequest struct {
	Name, Role, Namespace, Password string
}

// CreateUser makes a user; a name taken is ErrConflict.
func (s *Service) CreateUser(ctx context.Context, req UserRequest) (model.User, error) {
	if err := auth.ValidateUser(req.Name, req.Role); err != nil {
		return model.User{}, state.Errorf(state.ErrInvalid, "%v", err)
	}
	switch {
	case req.Namespace != "" && req.Role == auth.RoleAdmin:
		return model.User{}, state.Errorf(state.ErrInvalid, "an admin user belongs to no namespace: admins act in every one")
	case req.Role != auth.RoleAdmin:
		req.Namespace = model.NamespaceOf(req.Namespace)
		if _, err := s.store.Namespace(req.Namespace); err != nil {
			return model.User{}, err
		}
	}
	if err := auth.ValidatePassword(req.Password); err != nil {
		return model.User{}, state.Errorf(state.ErrInvalid, "%v", err)
	}
	u := model.User{Name: req.Name, Role: req.Role, Namespace: req.Namespace,
		PasswordHash: auth.HashPassword(req.Password), CreatedAt: time.Now().UTC()}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutUser{User: u, Create: true})
	if err != nil {
		return model.User{}, err
	}
	if res.Conflict {
		return model.User{}, state.Errorf(state.ErrConflict, "user %q exists already", req.Name)
	}
	return u, nil
}

// DeleteUser removes user name, and their sessions with them, for the
// caller whose identity is callerID; nobody deletes themself.
func (s *Service) DeleteUser(ctx context.Context, callerID, name string) error {
	if callerID == auth.UserPrefix+name {
		return state.Errorf(state.ErrConflict, "a user cannot delete themself: ask another admin")
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteUser{Name: name})
	return err
}

// Caller is who makes a request: its key (or a session's user as a key,
// auth.Principal) and the session, if it came with one.
type Caller struct {
	Key       model.Key
	SessionID string // "" for an API key
}

// SetPassword changes user name's password. An admin may change anyone's;
// a user their own, giving the current one too. The user's other sessions
// end (the caller's own, when it changes its own, is kept).
func (s *Service) SetPassword(ctx context.Context, caller Caller, name, password, current string) error {
	self := caller.Key.ID == auth.UserPrefix+name
	admin := caller.Key.Role == auth.RoleAdmin
	if !admin && !self {
		return state.Errorf(ErrForbidden, "only an admin or the user themself may change a password")
	}
	if err := auth.ValidatePassword(password); err != nil {
		return state.Errorf(state.ErrInvalid, "%v", err)
	}
	u, err := s.store.User(name)
	if err != nil {
		return err
	}
	if !admin {
		if _, err := auth.Login(s.store, name, current); err != nil {
			return state.Errorf(ErrForbidden, "current_password is missing or wrong")
		}
	}
	u.PasswordHash = auth.HashPassword(password)
	u.UpdatedAt = time.Now().UTC()
	cmd := fsm.PutUser{User: u}
	if self {
		cmd.Keep = caller.SessionID
	}
	_, err = fsm.Apply(ctx, s.d.Control, cmd)
	return err
}

// Login checks a user's name and password and starts a session: it
// returns the session's token (for the cookie), the session and the
// user. A wrong name and a wrong password fail alike (auth.ErrBadLogin).
func (s *Service) Login(ctx context.Context, name, password string) (string, model.Session, model.User, error) {
	user, err := auth.Login(s.store, name, password)
	if err != nil {
		return "", model.Session{}, model.User{}, err
	}
	token, sess, err := auth.StartSession(ctx, s.d.Control, user.Name, time.Now().UTC())
	if errors.Is(err, state.ErrNotFound) { // the user was removed meanwhile
		err = auth.ErrBadLogin
	}
	return token, sess, user, err
}

// Logout ends session id.
func (s *Service) Logout(ctx context.Context, id string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteSession{ID: id})
	return err
}
