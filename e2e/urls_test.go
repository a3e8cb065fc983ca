package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// urlHandler answers by the path it is called on: /binary sends the body
// back as base64, /fail raises, /plain returns a dict without statusCode,
// and any other path returns the event itself, with two cookies and a
// header naming the method.
const urlHandler = `import base64, json

def handler(event, context):
    path = event["rawPath"]
    if path == "/binary":
        body = event.get("body", "")
        if not event["isBase64Encoded"]:
            body = base64.b64encode(body.encode()).decode()
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"}, "body": body, "isBase64Encoded": True}
    if path == "/fail":
        raise ValueError("a secret detail of the failure")
    if path == "/plain":
        return {"hello": "world"}
    return {
        "statusCode": 200,
        "headers": {"x-method": event["requestContext"]["http"]["method"]},
        "cookies": ["session=abc; Path=/", "theme=dark"],
        "body": json.dumps(event),
    }
`

// urlCall sends a request to a function URL path of the node, with the
// admin key when withKey, and returns the answer with its body read.
func (n *devNode) urlCall(method, path string, header http.Header, body []byte, withKey bool) (*http.Response, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+path, bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if withKey {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// urlEvent is the part of the event the tests look at.
type urlEvent struct {
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	RequestContext        struct {
		AccountID string `json:"accountId"`
		HTTP      struct {
			Method string `json:"method"`
			Path   string `json:"path"`
		} `json:"http"`
	} `json:"requestContext"`
	Body            string `json:"body"`
	IsBase64Encoded bool   `json:"isBase64Encoded"`
}

func TestFunctionURLPassesEveryRequestShapeAndMapsTheAnswerBack(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("echo", urlHandler, map[string]any{"timeout": "30s"})
	r := n.mustCLI(0, "url", "create", "echo", "--auth", "none", "--cors-origin", "https://app.example",
		"--cors-methods", "GET,POST", "--cors-headers", "X-Thing", "--cors-max-age", "60")
	if !strings.Contains(r.stdout, n.url+"/fn/default/echo/") {
		t.Fatalf("url create does not print the URL %s/fn/default/echo/: %s", n.url, r.stdout)
	}

	t.Run("every method reaches the function", func(t *testing.T) {
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} {
			resp, body := n.urlCall(method, "/fn/default/echo/m", nil, nil, false)
			if resp.StatusCode != 200 || resp.Header.Get("X-Method") != method {
				t.Errorf("%s: %d, x-method %q, body %s", method, resp.StatusCode, resp.Header.Get("X-Method"), body)
			}
			if method == "HEAD" {
				continue
			}
			var e urlEvent
			if err := json.Unmarshal(body, &e); err != nil || e.RequestContext.HTTP.Method != method || e.RawPath != "/m" {
				t.Errorf("%s: event %s (%v)", method, body, err)
			}
		}
	})

	t.Run("the query and repeated headers arrive joined by commas", func(t *testing.T) {
		h := http.Header{"X-Rep": {"one", "two"}}
		resp, body := n.urlCall("GET", "/fn/default/echo/a/b?x=1&x=2&y=z", h, nil, false)
		var e urlEvent
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %s (%v)", resp.StatusCode, body, err)
		}
		if e.RawPath != "/a/b" || e.RequestContext.HTTP.Path != "/a/b" || e.RawQueryString != "x=1&x=2&y=z" ||
			!reflect.DeepEqual(e.QueryStringParameters, map[string]string{"x": "1,2", "y": "z"}) ||
			e.Headers["x-rep"] != "one,two" || e.RequestContext.AccountID != "default" {
			t.Errorf("event %s", body)
		}
	})

	t.Run("a binary body round-trips through base64", func(t *testing.T) {
		in := make([]byte, 64<<10)
		rand.Read(in)
		resp, out := n.urlCall("POST", "/fn/default/echo/binary", http.Header{"Content-Type": {"application/octet-stream"}}, in, false)
		if resp.StatusCode != 200 || !bytes.Equal(in, out) || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%d %s: %d bytes back, same %v", resp.StatusCode, resp.Header.Get("Content-Type"), len(out), bytes.Equal(in, out))
		}
	})

	t.Run("a text body arrives as text", func(t *testing.T) {
		_, body := n.urlCall("POST", "/fn/default/echo/t", http.Header{"Content-Type": {"application/json"}}, []byte(`{"a": 1}`), false)
		var e urlEvent
		if err := json.Unmarshal(body, &e); err != nil || e.Body != `{"a": 1}` || e.IsBase64Encoded {
			t.Errorf("event %s (%v)", body, err)
		}
	})

	t.Run("cookies go in as a list and come out as Set-Cookie headers", func(t *testing.T) {
		resp, body := n.urlCall("GET", "/fn/default/echo/c", http.Header{"Cookie": {"a=1; b=2"}}, nil, false)
		var e urlEvent
		if err := json.Unmarshal(body, &e); err != nil || !reflect.DeepEqual(e.Cookies, []string{"a=1", "b=2"}) {
			t.Errorf("event cookies %v (%v)", e.Cookies, err)
		}
		if _, ok := e.Headers["cookie"]; ok {
			t.Error("the Cookie header stayed in the headers")
		}
		if got := resp.Header.Values("Set-Cookie"); !reflect.DeepEqual(got, []string{"session=abc; Path=/", "theme=dark"}) {
			t.Errorf("Set-Cookie %q", got)
		}
	})

	t.Run("a result without statusCode is a 200 JSON body", func(t *testing.T) {
		resp, body := n.urlCall("GET", "/fn/default/echo/plain", nil, nil, false)
		var got map[string]string
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &got) != nil || got["hello"] != "world" {
			t.Errorf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("the platform answers CORS preflight for an allowed origin only", func(t *testing.T) {
		pre := func(origin string) *http.Response {
			resp, _ := n.urlCall("OPTIONS", "/fn/default/echo/", http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}}, nil, false)
			return resp
		}
		ok := pre("https://app.example")
		if ok.StatusCode != 204 || ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			ok.Header.Get("Access-Control-Allow-Methods") != "GET, POST" || ok.Header.Get("Access-Control-Allow-Headers") != "X-Thing" ||
			ok.Header.Get("Access-Control-Max-Age") != "60" {
			t.Errorf("allowed origin's preflight: %d %v", ok.StatusCode, ok.Header)
		}
		if bad := pre("https://evil.example"); bad.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin's preflight allowed: %v", bad.Header)
		}
		allowed, _ := n.urlCall("GET", "/fn/default/echo/", http.Header{"Origin": {"https://app.example"}}, nil, false)
		if allowed.StatusCode != 200 || allowed.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Errorf("allowed origin's answer: %d %v", allowed.StatusCode, allowed.Header)
		}
		other, _ := n.urlCall("GET", "/fn/default/echo/", http.Header{"Origin": {"https://evil.example"}}, nil, false)
		if other.StatusCode != 200 || other.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin's answer: %d %v", other.StatusCode, other.Header)
		}
	})

	t.Run("a handler error answers 502 without the trace", func(t *testing.T) {
		resp, body := n.urlCall("GET", "/fn/default/echo/fail", nil, nil, false)
		if resp.StatusCode != 502 || strings.TrimSpace(string(body)) != `{"message":"Internal Server Error"}` {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		for _, leak := range []string{"Traceback", "ValueError", "secret detail"} {
			if strings.Contains(string(body), leak) {
				t.Errorf("the answer shows %q: %s", leak, body)
			}
		}
	})

	t.Run("a body over 6 MB is refused with 413", func(t *testing.T) {
		resp, body := n.urlCall("POST", "/fn/default/echo/big", http.Header{"Content-Type": {"application/octet-stream"}}, make([]byte, 6<<20+1), false)
		if resp.StatusCode != 413 {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("the records say the URL triggered them", func(t *testing.T) {
		waitFor(t, patience, "a record with trigger url", func() bool {
			for _, rec := range n.invocations("echo") {
				if rec.Trigger == "url" {
					return true
				}
			}
			return false
		})
		_, _, metrics := n.do("GET", "/metrics", "", nil)
		if !strings.Contains(string(metrics), `nimbus_invocations_total{function="echo",namespace="default",outcome="success",trigger="url"}`) {
			t.Errorf("the metrics count no URL invocation")
		}
	})
}

func TestFunctionURLAuthLimitsBadInputAndRemoval(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("guarded", urlHandler, map[string]any{"timeout": "30s"})
	n.mustDeploy("open", urlHandler, map[string]any{"timeout": "30s"})
	n.mustDeploy("throttled", urlHandler, map[string]any{"timeout": "30s", "reserved_concurrency": 0})
	n.mustDeploy("nourl", urlHandler, map[string]any{"timeout": "30s"})
	n.mustCLI(0, "url", "create", "guarded", "--cors-origin", "https://app.example")
	n.mustCLI(0, "url", "create", "open", "--auth", "none", "--rate-limit", "0.01")
	n.mustCLI(0, "url", "create", "throttled", "--auth", "none")

	t.Run("a key URL refuses a caller without a key and serves one with it", func(t *testing.T) {
		if resp, body := n.urlCall("GET", "/fn/default/guarded/", nil, nil, false); resp.StatusCode != 401 {
			t.Errorf("without a key: %d %s", resp.StatusCode, body)
		}
		resp, body := n.urlCall("GET", "/fn/default/guarded/", nil, nil, true)
		var e urlEvent
		if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil {
			t.Fatalf("with a key: %d %s", resp.StatusCode, body)
		}
		if _, ok := e.Headers["authorization"]; ok {
			t.Error("the caller's API key reached the function")
		}
	})

	t.Run("a URL without a key keeps to its rate", func(t *testing.T) {
		if resp, body := n.urlCall("GET", "/fn/default/open/", nil, nil, false); resp.StatusCode != 200 {
			t.Fatalf("first request: %d %s", resp.StatusCode, body)
		}
		resp, body := n.urlCall("GET", "/fn/default/open/", nil, nil, false)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Retry-After") == "1" {
			t.Errorf("second request within the rate's second: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	})

	t.Run("the function's reserved concurrency applies", func(t *testing.T) {
		if resp, body := n.urlCall("GET", "/fn/default/throttled/", nil, nil, false); resp.StatusCode != 429 {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("a function without a URL answers 404 saying so", func(t *testing.T) {
		resp, body := n.urlCall("GET", "/fn/default/nourl/", nil, nil, false)
		if resp.StatusCode != 404 || !strings.Contains(string(body), "has no URL") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("bad settings are refused and the stored URL stays", func(t *testing.T) {
		r := n.mustCLI(3, "url", "create", "guarded", "--auth", "iam")
		if !strings.Contains(r.stderr, `"iam"`) {
			t.Errorf("unknown auth: %s", r.stderr)
		}
		for _, body := range []string{
			`{"auth": "iam"}`,
			`{"cors": {"allow_origins": ["app.example"]}}`,
			`{"cors": {"allow_origins": ["*"], "allow_credentials": true}}`,
			`{"cors": {"allow_origins": ["*"], "max_age": -1}}`,
			`{"cors": {"allow_origins": ["*"], "allow_methods": ["FETCH"]}}`,
		} {
			status, _, b := n.do("PUT", "/v1/functions/guarded/url", "application/json", strings.NewReader(body))
			var e client.ErrorBody
			if status != 400 || json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
				t.Errorf("%s: %d %s", body, status, b)
			}
		}
		var u client.FunctionURL
		if err := json.Unmarshal([]byte(n.mustCLI(0, "url", "get", "guarded", "-o", "json").stdout), &u); err != nil ||
			u.Auth != client.URLAuthKey || u.CORS == nil || u.CORS.AllowOrigins[0] != "https://app.example" {
			t.Errorf("the stored URL changed: %+v %v", u, err)
		}
	})

	t.Run("removing the function removes its URL", func(t *testing.T) {
		n.mustCLI(0, "rm", "guarded")
		if resp, body := n.urlCall("GET", "/fn/default/guarded/", nil, nil, true); resp.StatusCode != 404 {
			t.Errorf("after rm: %d %s", resp.StatusCode, body)
		}
		n.mustCLI(3, "url", "get", "guarded")
		n.mustDeploy("guarded", urlHandler, map[string]any{"timeout": "30s"})
		if resp, body := n.urlCall("GET", "/fn/default/guarded/", nil, nil, true); resp.StatusCode != 404 {
			t.Errorf("a function deployed again under the name has a URL: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("url rm removes the URL and keeps the function", func(t *testing.T) {
		n.mustCLI(0, "url", "rm", "open")
		if resp, _ := n.urlCall("GET", "/fn/default/open/", nil, nil, false); resp.StatusCode != 404 {
			t.Errorf("after url rm: %d", resp.StatusCode)
		}
		n.mustCLI(0, "get", "open")
	})
}
