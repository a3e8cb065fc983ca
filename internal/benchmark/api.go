package benchmark

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nimbus/pkg/client"
)

// api speaks to a Nimbus REST API (or the trivial baseline server) over
// one keep-alive HTTP client that keeps up to conns idle connections.
// Safe for concurrent use.
type api struct {
	base, token string
	hc          *http.Client
}

func newAPI(base, token string, conns int) *api {
	return &api{
		base:  strings.TrimRight(base, "/"),
		token: token,
		hc: &http.Client{
			Transport: &http.Transport{MaxIdleConns: conns + 4, MaxIdleConnsPerHost: conns + 4, IdleConnTimeout: time.Minute},
			Timeout:   2 * time.Minute,
		},
	}
}

// noopZip is a package whose handler returns None. tag, written into a
// comment, makes each package's code (and its sha256) its own.
func noopZip(tag string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "# %s\ndef handler(e, c):\n    return None\n", tag)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// deploy creates or updates function name with a no-op handler on the
// server's default runtime and returns the function as deployed.
func (a *api) deploy(ctx context.Context, name string) (client.Function, error) {
	code, err := noopZip(name)
	if err != nil {
		return client.Function{}, err
	}
	return a.deployZip(ctx, name, code)
}

// deployZip creates or updates function name with the package code.
func (a *api) deployZip(ctx context.Context, name string, code []byte) (client.Function, error) {
	return a.deployConfig(ctx, client.FunctionConfig{Name: name}, code)
}

// deployConfig creates or updates the function cfg names with cfg and
// the package code.
func (a *api) deployConfig(ctx context.Context, cfg client.FunctionConfig, code []byte) (client.Function, error) {
	var fn client.Function
	body, err := json.Marshal(map[string]any{
		"config":          cfg,
		"code_zip_base64": base64.StdEncoding.EncodeToString(code),
	})
	if err != nil {
		return fn, err
	}
	status, _, resp, err := a.do(ctx, http.MethodPut, "/v1/functions/"+url.PathEscape(cfg.Name), body)
	if err != nil {
		return fn, err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fn, fmt.Errorf("benchmark: deploy %s: %d %s", cfg.Name, status, resp)
	}
	return fn, json.Unmarshal(resp, &fn)
}

// remove deletes function name.
func (a *api) remove(ctx context.Context, name string) error {
	status, _, resp, err := a.do(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusNoContent {
		return fmt.Errorf("benchmark: delete %s: %d %s", name, status, resp)
	}
	return nil
}

// invoke invokes name synchronously with the event {} and returns the
// time from sending the request to reading the whole answer, and whether
// the platform marked it a cold start. A function error is an error.
func (a *api) invoke(ctx context.Context, name string) (time.Duration, bool, error) {
	t0 := time.Now()
	status, h, resp, err := a.do(ctx, http.MethodPost, "/v1/functions/"+url.PathEscape(name)+"/invoke", []byte("{}"))
	d := time.Since(t0)
	if err != nil {
		return 0, false, err
	}
	if status != http.StatusOK || h.Get(client.HeaderFunctionError) != "" {
		return 0, false, fmt.Errorf("benchmark: invoke %s: %d %s", name, status, resp)
	}
	return d, h.Get(client.HeaderColdStart) == "true", nil
}

// do sends one request with the token and reads the whole answer.
func (a *api) do(ctx context.Context, method, path string, body []byte) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
