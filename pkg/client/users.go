package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// User is a dashboard user as the API shows it (never a password or its
// hash).
type User struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// UserRequest asks for a new user.
type UserRequest struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Namespace string `json:"namespace,omitempty"`
	Password  string `json:"password"`
}

// Session says who a caller is: a logged-in user (with the CSRF token
// that the session's state-changing requests must carry in X-CSRF-Token)
// or, for GET /v1/session with an API key, the key.
type Session struct {
	User      string    `json:"user,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	Role      string    `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	CSRFToken string    `json:"csrf_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// CreateUser makes a user (admin only).
func (c *Client) CreateUser(ctx context.Context, req UserRequest) (User, error) {
	var out User
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/users", nil, req, &out)
	return out, err
}

// Users lists users.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/users", nil, nil, &out)
	return out.Users, err
}

// DeleteUser removes a user and ends their sessions.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// SetPassword changes a user's password (an admin's key, or the user's
// own session with current set).
func (c *Client) SetPassword(ctx context.Context, name, password, current string) error {
	body := map[string]string{"password": password}
	if current != "" {
		body["current_password"] = current
	}
	_, err := c.doJSON(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(name)+"/password", nil, body, nil)
	return err
}
