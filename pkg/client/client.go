package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is sent when no WithUserAgent option is given.
const DefaultUserAgent = "nimbus-client/1"

// maxErrorBody bounds how much of an error answer is read to decode it.
const maxErrorBody = 1 << 20

// Client speaks REST API v1 to one Nimbus server. It is safe for concurrent
// use by multiple goroutines; its fields are fixed by New.
type Client struct {
	base      *url.URL
	token     string
	namespace string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc. Streaming
// calls (FollowLogs) last until their context ends, so hc should not set a
// Timeout; bound calls with their context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithNamespace makes every request act in namespace ns (header
// X-Nimbus-Namespace): an admin key's choice; other keys act in their own
// namespace and are refused another. "" sends no header.
func WithNamespace(ns string) Option {
	return func(c *Client) { c.namespace = ns }
}

// In returns a copy of the Client whose requests act in namespace ns.
func (c *Client) In(ns string) *Client {
	cp := *c
	cp.namespace = ns
	return &cp
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a Client for the server at baseURL (e.g.
// "http://127.0.0.1:8080", a path prefix is kept) that authenticates with
// token as a bearer key; an empty token sends no Authorization header.
// A baseURL that does not parse makes every call fail with that error.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{token: token, http: &http.Client{}, userAgent: DefaultUserAgent}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err == nil && (u.Scheme == "" || u.Host == "") {
		err = fmt.Errorf("invalid server URL %q: want scheme://host[:port]", baseURL)
	}
	if err != nil {
		c.base = nil
	} else {
		c.base = u
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server URL the client talks to.
func (c *Client) BaseURL() string {
	if c.base == nil {
		return ""
	}
	return c.base.String()
}

// endpoint builds the absolute URL of an API path (already escaped) and
// query.
func (c *Client) endpoint(path string, q url.Values) (string, error) {
	if c.base == nil {
		return "", errors.New("client: invalid server URL")
	}
	u := *c.base
	raw := strings.TrimRight(u.EscapedPath(), "/") + path
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = p, raw
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	} else {
		u.RawQuery = ""
	}
	return u.String(), nil
}

// newRequest builds a request carrying the client's headers.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u, err := c.endpoint(path, q)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.namespace != "" {
		req.Header.Set(HeaderNamespace, c.namespace)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// readRetries bounds how many times an idempotent read (GET or HEAD
// without a body) is sent again after a 503 that carries Retry-After: a
// server catching up with its cluster after a start, or one that waits for
// a leader. Writes are never sent again: their outcome may be unknown.
const readRetries = 5

// maxRetryWait bounds one wait before such a retry, whatever Retry-After
// asks.
const maxRetryWait = 5 * time.Second

// send performs req and turns any non-2xx answer into an *APIError (the
// body is then consumed and closed). On success the caller owns resp.Body.
// Transport failures come back as returned by net/http (a *url.Error). A
// read answered 503 with Retry-After is sent again after that wait (at
// most maxRetryWait), up to readRetries times or until req's context
// ends; the last answer's error is returned.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return resp, nil
		}
		ae := decodeError(resp)
		resp.Body.Close()
		if attempt >= readRetries || !retriedRead(req, ae) {
			return nil, ae
		}
		t := time.NewTimer(min(ae.RetryAfter, maxRetryWait))
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, ae
		case <-t.C:
		}
		req = req.Clone(req.Context())
	}
}

// retriedRead reports whether req, answered with ae, is sent again: a read
// without a body, refused for a while (503 with Retry-After).
func retriedRead(req *http.Request, ae *APIError) bool {
	read := (req.Method == http.MethodGet || req.Method == http.MethodHead) && (req.Body == nil || req.Body == http.NoBody)
	return read && ae.Status == http.StatusServiceUnavailable && ae.RetryAfter > 0
}

// doJSON sends a request with an optional JSON body and decodes a 2xx JSON
// answer into out (when out is non-nil). It returns the status code.
func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, decodeErr(method, path, err)
	}
	return resp.StatusCode, nil
}

// decodeErr wraps a failure to decode a 2xx answer.
func decodeErr(method, path string, err error) error {
	return fmt.Errorf("client: decode answer of %s %s: %w", method, path, err)
}

// decodeError reads an error answer. A body of the shape ErrorBody gives
// Code and Message; anything else falls back to the status text.
func decodeError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && (eb.Error.Code != "" || eb.Error.Message != "") {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	}
	text := http.StatusText(resp.StatusCode)
	if text == "" {
		text = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if e.Code == "" {
		e.Code = strings.ReplaceAll(text, " ", "")
	}
	if e.Message == "" {
		e.Message = text
	}
	e.Leader = resp.Header.Get(HeaderLeader)
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// Health reports nil when the server answers GET /healthz with a 2xx.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.doJSON(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Cluster describes the servers and workers of the cluster.
func (c *Client) Cluster(ctx context.Context) (Cluster, error) {
	var cl Cluster
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/cluster", nil, nil, &cl)
	return cl, err
}
