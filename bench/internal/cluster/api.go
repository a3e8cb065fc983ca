package cluster

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"nimbus/pkg/client"
)

// API speaks to the servers' REST APIs through one keep-alive transport
// that keeps enough idle connections for every concurrent client. It is
// safe for concurrent use.
type API struct {
	token string
	hc    *http.Client
}

// NewAPI returns an API client with the admin token for conns concurrent
// callers.
func NewAPI(token string, conns int) *API {
	tr := &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &API{token: token, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Do sends one request with the token and reads the whole answer.
func (a *API) Do(ctx context.Context, method, addr, path string, body []byte, header http.Header) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// GetJSON is GET path on addr, decoded into out; any status but 200 is an
// error.
func (a *API) GetJSON(ctx context.Context, addr, path string, out any) error {
	status, body, err := a.Do(ctx, http.MethodGet, addr, path, nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, addr, status, Short(body))
	}
	return json.Unmarshal(body, out)
}

// NoOp is the source of a Python function that does nothing.
const NoOp = "def handler(e,c): return None\n"

// Deploy puts a Python function named name whose main.py is source
// (retry_delay 1s).
func (a *API) Deploy(ctx context.Context, addr, name, source string) error {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err != nil {
		return err
	}
	io.WriteString(w, source)
	if err := zw.Close(); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{
		"config":          map[string]any{"name": name, "retry_delay": "1s"},
		"code_zip_base64": base64.StdEncoding.EncodeToString(buf.Bytes()),
	})
	if err != nil {
		return err
	}
	status, resp, err := a.Do(ctx, http.MethodPut, addr, "/v1/functions/"+name, body, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("deploy %s: %d %s", name, status, Short(resp))
	}
	return nil
}

// Invocations is GET /v1/invocations?function=fn&limit=10000 (the most
// the API gives), newest first.
func (a *API) Invocations(ctx context.Context, addr, fn string) ([]client.Invocation, error) {
	var out struct {
		Invocations []client.Invocation `json:"invocations"`
	}
	err := a.GetJSON(ctx, addr, "/v1/invocations?limit=10000&function="+fn, &out)
	return out.Invocations, err
}

// Settle waits until every server answers GET /v1/cluster naming the same
// single leader, with three servers and a healthy worker in view, and
// returns the leader's index in c.Servers.
func (a *API) Settle(ctx context.Context, c *Cluster, limit time.Duration) (int, error) {
	view := func(ctx context.Context, addr string) (client.Cluster, error) {
		var cl client.Cluster
		return cl, a.GetJSON(ctx, addr, "/v1/cluster", &cl)
	}
	return Settle(ctx, limit, 50*time.Millisecond, func(ctx context.Context) (int, string, error) {
		leader, _, why := c.Agreed(ctx, view)
		return leader, why, nil
	})
}

// Short is b trimmed to at most 200 bytes, for an error message.
func Short(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// Schedules lists every schedule through the server at addr, a page of
// 10,000 at a time.
func (a *API) Schedules(ctx context.Context, addr string) ([]client.Schedule, error) {
	var all []client.Schedule
	for path := "/v1/schedules?limit=10000"; path != ""; {
		var page struct {
			Schedules []client.Schedule `json:"schedules"`
			Next      string            `json:"next"`
		}
		if err := a.GetJSON(ctx, addr, path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Schedules...)
		path = ""
		if page.Next != "" {
			path = "/v1/schedules?limit=10000&after=" + url.QueryEscape(page.Next)
		}
	}
	return all, nil
}
