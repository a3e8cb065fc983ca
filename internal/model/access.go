package model

import "time"

// Key is a stored API key. The secret itself is never stored: only its
// SHA-256 (keys carry at least 128 random bits, so a fast hash suffices).
type Key struct {
	ID         string `json:"id"`
	SecretHash string `json:"secret_hash"` // hex SHA-256 of the secret part
	Role       string `json:"role"`
	// Namespace binds a non-admin key to one namespace ("" means the
	// default one); admin keys act in every namespace.
	Namespace string    `json:"namespace,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Note      string    `json:"note,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`  // zero: never
	RateLimit float64   `json:"rate_limit,omitempty"` // requests/s; 0: the server's default
}

// User is a dashboard user. The password itself is never stored: only its
// argon2id hash in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
type User struct {
	Name         string    `json:"name"`
	Role         string    `json:"role"`                // admin, developer or viewer
	Namespace    string    `json:"namespace,omitempty"` // "": the default namespace
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
}

// Session is a console session: a user's, after a login, or an API key's,
// after a key sign-in (Key set, User empty), which acts with the key's
// role and namespace while the key lives. Like an API key, its token is
// "<id>_<secret>" and only the secret's SHA-256 is stored.
type Session struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secret_hash"` // hex SHA-256 of the secret part
	User       string    `json:"user"`
	Key        string    `json:"key,omitempty"` // the key's id, for a key sign-in
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// ServerInfo is a control-plane member's addresses, recorded through Raft
// so that every server can reach every other's API.
type ServerInfo struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	APIAddr string `json:"api"`
}
