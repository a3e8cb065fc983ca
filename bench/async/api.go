package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/pkg/client"
)

// api speaks to the servers' REST APIs through one keep-alive transport
// that keeps enough idle connections for every concurrent client. It is
// safe for concurrent use.
type api struct {
	token string
	hc    *http.Client
}

func newAPI(token string, conns int) *api {
	tr := &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &api{token: token, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// do sends one request with the token and reads the whole answer.
func (a *api) do(ctx context.Context, method, addr, path string, body []byte, header http.Header) (int, []byte, error) {
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

// getJSON is GET path on addr, decoded into out; any status but 200 is an
// error.
func (a *api) getJSON(ctx context.Context, addr, path string, out any) error {
	status, body, err := a.do(ctx, http.MethodGet, addr, path, nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, addr, status, short(body))
	}
	return json.Unmarshal(body, out)
}

// deploy puts a no-op Python function named name (retry_delay 1s).
func (a *api) deploy(ctx context.Context, addr, name string) error {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err != nil {
		return err
	}
	io.WriteString(w, "def handler(e,c): return None\n")
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
	status, resp, err := a.do(ctx, http.MethodPut, addr, "/v1/functions/"+name, body, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("deploy %s: %d %s", name, status, short(resp))
	}
	return nil
}

// invocations is GET /v1/invocations?function=fn&limit=10000 (the most
// the API gives), newest first.
func (a *api) invocations(ctx context.Context, addr, fn string) ([]client.Invocation, error) {
	var out struct {
		Invocations []client.Invocation `json:"invocations"`
	}
	err := a.getJSON(ctx, addr, "/v1/invocations?limit=10000&function="+fn, &out)
	return out.Invocations, err
}

// settle waits until every server answers GET /v1/cluster naming the same
// single leader, with three servers and a healthy worker in view, and
// returns the leader's index in c.Servers.
func (a *api) settle(ctx context.Context, c *cluster.Cluster, limit time.Duration) (int, error) {
	view := func(ctx context.Context, addr string) (client.Cluster, error) {
		var cl client.Cluster
		return cl, a.getJSON(ctx, addr, "/v1/cluster", &cl)
	}
	return cluster.Settle(ctx, limit, 50*time.Millisecond, func(ctx context.Context) (int, string, error) {
		leader, _, why := c.Agreed(ctx, view)
		return leader, why, nil
	})
}

func short(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
