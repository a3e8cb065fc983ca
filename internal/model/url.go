package model

import "time"

// Function URL authentication modes.
const (
	URLAuthNone = "none" // anyone may call the URL
	URLAuthKey  = "key"  // an API key or session that may invoke the function
)

// FunctionURL gives a function an HTTP endpoint, /fn/{namespace}/{name}/,
// on every server. One per function, named by the function's qualified
// name; removing the function removes it.
type FunctionURL struct {
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	Auth      string `json:"auth"` // URLAuthNone or URLAuthKey
	CORS      *CORS  `json:"cors,omitempty"`
	// RateLimit is the requests per second the URL takes without a key
	// (auth none); 0: the server's default per-key rate.
	RateLimit float64   `json:"rate_limit,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CORS is a function URL's cross-origin policy, which the platform
// applies itself (answering preflight requests and adding the
// Access-Control-* headers to the function's answers).
type CORS struct {
	AllowOrigins     []string `json:"allow_origins"` // origins, or "*"
	AllowMethods     []string `json:"allow_methods,omitempty"`
	AllowHeaders     []string `json:"allow_headers,omitempty"`
	ExposeHeaders    []string `json:"expose_headers,omitempty"`
	MaxAge           int      `json:"max_age,omitempty"` // seconds
	AllowCredentials bool     `json:"allow_credentials,omitempty"`
}
