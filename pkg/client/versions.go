package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Alias is a name for a published version of a function (or $LATEST),
// invoked as NAME:ALIAS; Routing sends a share of its invocations to a
// second version.
type Alias struct {
	Namespace   string        `json:"namespace,omitempty"`
	Function    string        `json:"function,omitempty"`
	Name        string        `json:"name"`
	Version     string        `json:"version"` // "$LATEST" or a number
	Description string        `json:"description,omitempty"`
	Routing     *AliasRouting `json:"routing,omitempty"`
	CreatedAt   time.Time     `json:"created_at,omitzero"`
	UpdatedAt   time.Time     `json:"updated_at,omitzero"`
}

// AliasRouting sends Weight (between 0 and 1) of an alias's invocations
// to Version.
type AliasRouting struct {
	Version string  `json:"version"`
	Weight  float64 `json:"weight"`
}

// PublishedVersion is what publishing answers: the version, and whether
// this publish made it (false: the head had not changed since the
// latest version, which is returned).
type PublishedVersion struct {
	Function
	Created bool `json:"created"`
}

func versionsPath(name string) string { return functionPath(name) + "/versions" }
func aliasesPath(name string) string  { return functionPath(name) + "/aliases" }

// PublishVersion makes an immutable numbered version of function name's
// current code and configuration.
func (c *Client) PublishVersion(ctx context.Context, name, description string) (PublishedVersion, error) {
	var out PublishedVersion
	_, err := c.doJSON(ctx, http.MethodPost, versionsPath(name), nil, map[string]string{"description": description}, &out)
	return out, err
}

// Versions lists function name's published versions, oldest first.
func (c *Client) Versions(ctx context.Context, name string) ([]Function, error) {
	var out struct {
		Versions []Function `json:"versions"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, versionsPath(name), nil, nil, &out)
	return out.Versions, err
}

// DeleteVersion removes a published version that no alias routes to.
func (c *Client) DeleteVersion(ctx context.Context, name, version string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, versionsPath(name)+"/"+url.PathEscape(version), nil, nil, nil)
	return err
}

// Aliases lists function name's aliases.
func (c *Client) Aliases(ctx context.Context, name string) ([]Alias, error) {
	var out struct {
		Aliases []Alias `json:"aliases"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, aliasesPath(name), nil, nil, &out)
	return out.Aliases, err
}

// GetAlias returns alias of function name.
func (c *Client) GetAlias(ctx context.Context, name, alias string) (Alias, error) {
	var out Alias
	_, err := c.doJSON(ctx, http.MethodGet, aliasesPath(name)+"/"+url.PathEscape(alias), nil, nil, &out)
	return out, err
}

// CreateAlias makes alias a of function name (a conflict if it exists).
func (c *Client) CreateAlias(ctx context.Context, name string, a Alias) (Alias, error) {
	var out Alias
	_, err := c.doJSON(ctx, http.MethodPost, aliasesPath(name), nil, a, &out)
	return out, err
}

// UpdateAlias replaces alias a.Name of function name (not found if it
// does not exist).
func (c *Client) UpdateAlias(ctx context.Context, name string, a Alias) (Alias, error) {
	var out Alias
	_, err := c.doJSON(ctx, http.MethodPut, aliasesPath(name)+"/"+url.PathEscape(a.Name), nil, a, &out)
	return out, err
}

// DeleteAlias removes alias of function name.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, aliasesPath(name)+"/"+url.PathEscape(alias), nil, nil, nil)
	return err
}
