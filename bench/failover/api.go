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

	"nimbus/pkg/client"
)

// requestTimeout bounds every request, so that a server that does not
// answer (a dead one, or one without a leader) cannot stall a poll.
const requestTimeout = 2 * time.Second

// api speaks to the servers' REST APIs with one keep-alive HTTP client.
type api struct {
	token string
	hc    *http.Client
	body  []byte // of the write, built once
}

func newAPI(token string) (*api, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err != nil {
		return nil, err
	}
	io.WriteString(w, "def handler(e,c): return 1\n")
	if err := zw.Close(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{
		"config":          map[string]any{"name": "bench"},
		"code_zip_base64": base64.StdEncoding.EncodeToString(buf.Bytes()),
	})
	if err != nil {
		return nil, err
	}
	return &api{
		token: token,
		hc:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: requestTimeout},
		body:  body,
	}, nil
}

// view is GET /v1/cluster on the server at addr.
func (a *api) view(ctx context.Context, addr string) (client.Cluster, error) {
	var cl client.Cluster
	status, body, err := a.do(ctx, http.MethodGet, addr, "/v1/cluster", nil)
	if err != nil {
		return cl, err
	}
	if status != http.StatusOK {
		return cl, fmt.Errorf("GET /v1/cluster on %s: %d %s", addr, status, body)
	}
	return cl, json.Unmarshal(body, &cl)
}

// write is PUT /v1/functions/bench on the server at addr. It reports
// whether the server answered 200 or 201, and otherwise why not.
func (a *api) write(ctx context.Context, addr string) (bool, string) {
	status, body, err := a.do(ctx, http.MethodPut, addr, "/v1/functions/bench", a.body)
	if err != nil {
		return false, err.Error()
	}
	if status != http.StatusOK && status != http.StatusCreated {
		if len(body) > 200 {
			body = body[:200]
		}
		return false, fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
	}
	return true, ""
}

// do sends one request with the token and reads the whole answer.
func (a *api) do(ctx context.Context, method, addr, path string, body []byte) (int, []byte, error) {
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
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// self returns the entry a server's view holds for the server id.
func self(cl client.Cluster, id string) (client.Server, bool) {
	for _, s := range cl.Servers {
		if s.ID == id {
			return s, true
		}
	}
	return client.Server{}, false
}
