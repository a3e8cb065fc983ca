package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// urlEventOf builds the event of a request made by prepare (to a URL of
// function hello in namespace team).
func urlEventOf(t *testing.T, method, target string, body []byte, prepare func(*http.Request), hide ...string) urlEvent {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(string(body)))
	r.RemoteAddr = "192.0.2.7:5555"
	if prepare != nil {
		prepare(r)
	}
	u := urlRequest{r: r, url: model.FunctionURL{Namespace: "team", Function: "hello"}, requestID: "req-1", body: body,
		now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), hide: hide}
	if len(hide) > 0 {
		u.hideCookie = sessionCookie
	}
	return newURLEvent(u)
}

func TestAFunctionURLRequestBecomesAnAPIGatewayV2Event(t *testing.T) {
	binary := []byte{0, 1, 2, 0xff, 0xfe}
	cases := []struct {
		name  string
		event urlEvent
		check func(urlEvent) string // "" when the event is right, else what is wrong
	}{
		{"the prefix is not part of the raw path", urlEventOf(t, "GET", "http://h.example:8080/fn/team/hello/a/b%20c", nil, nil), func(e urlEvent) string {
			if e.RawPath != "/a/b%20c" || e.RequestContext.HTTP.Path != "/a/b%20c" {
				return "rawPath " + e.RawPath
			}
			return ""
		}},
		{"the function's root is the path /", urlEventOf(t, "GET", "/fn/team/hello", nil, nil), func(e urlEvent) string {
			if e.RawPath != "/" {
				return "rawPath " + e.RawPath
			}
			return ""
		}},
		{"repeated query parameters are joined by commas", urlEventOf(t, "GET", "/fn/team/hello/?a=1&a=2&b=x", nil, nil), func(e urlEvent) string {
			if e.RawQueryString != "a=1&a=2&b=x" || !reflect.DeepEqual(e.QueryStringParameters, map[string]string{"a": "1,2", "b": "x"}) {
				return "query " + e.RawQueryString
			}
			return ""
		}},
		{"a request without a query has no parameters", urlEventOf(t, "GET", "/fn/team/hello/", nil, nil), func(e urlEvent) string {
			if e.QueryStringParameters != nil || e.RawQueryString != "" {
				return "parameters present"
			}
			return ""
		}},
		{"header names are lower case and repeated values joined by commas", urlEventOf(t, "GET", "/fn/team/hello/", nil, func(r *http.Request) {
			r.Header.Add("X-Thing", "one")
			r.Header.Add("X-Thing", "two")
			r.Header.Set("User-Agent", "tester/1")
		}), func(e urlEvent) string {
			if e.Headers["x-thing"] != "one,two" || e.Headers["host"] == "" || e.RequestContext.HTTP.UserAgent != "tester/1" {
				return "headers wrong"
			}
			return ""
		}},
		{"cookies leave the headers for the cookies list", urlEventOf(t, "GET", "/fn/team/hello/", nil, func(r *http.Request) {
			r.Header.Add("Cookie", "a=1; b=2")
			r.Header.Add("Cookie", "c=3")
		}), func(e urlEvent) string {
			if _, ok := e.Headers["cookie"]; ok || !reflect.DeepEqual(e.Cookies, []string{"a=1", "b=2", "c=3"}) {
				return "cookies wrong"
			}
			return ""
		}},
		{"the credentials a key URL checked are not passed on", urlEventOf(t, "POST", "/fn/team/hello/", nil, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer secret")
			r.Header.Add("Cookie", sessionCookie+"=secret; theme=dark")
		}, "authorization", "x-csrf-token"), func(e urlEvent) string {
			if _, ok := e.Headers["authorization"]; ok || !reflect.DeepEqual(e.Cookies, []string{"theme=dark"}) {
				return "a credential reached the event"
			}
			return ""
		}},
		{"a JSON body goes as text", urlEventOf(t, "POST", "/fn/team/hello/", []byte(`{"a":1}`), func(r *http.Request) {
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
		}), func(e urlEvent) string {
			if e.Body != `{"a":1}` || e.IsBase64Encoded {
				return "body " + e.Body
			}
			return ""
		}},
		{"a form body goes as text", urlEventOf(t, "POST", "/fn/team/hello/", []byte("a=1&b=2"), func(r *http.Request) {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}), func(e urlEvent) string {
			if e.Body != "a=1&b=2" || e.IsBase64Encoded {
				return "body " + e.Body
			}
			return ""
		}},
		{"a binary body goes as base64", urlEventOf(t, "PUT", "/fn/team/hello/", binary, func(r *http.Request) {
			r.Header.Set("Content-Type", "application/octet-stream")
		}), func(e urlEvent) string {
			if got, _ := base64.StdEncoding.DecodeString(e.Body); !e.IsBase64Encoded || string(got) != string(binary) {
				return "body " + e.Body
			}
			return ""
		}},
		{"a text type whose bytes are not UTF-8 goes as base64", urlEventOf(t, "POST", "/fn/team/hello/", binary, func(r *http.Request) {
			r.Header.Set("Content-Type", "text/plain")
		}), func(e urlEvent) string {
			if !e.IsBase64Encoded {
				return "sent as text"
			}
			return ""
		}},
		{"the request context names the request", urlEventOf(t, "PATCH", "http://h.example:8080/fn/team/hello/x", nil, nil), func(e urlEvent) string {
			c := e.RequestContext
			want := urlRequestContext{AccountID: "team", APIID: "hello", DomainName: "h.example:8080", DomainPrefix: "h",
				HTTP:      urlHTTP{Method: "PATCH", Path: "/x", Protocol: "HTTP/1.1", SourceIP: "192.0.2.7"},
				RequestID: "req-1", RouteKey: "$default", Stage: "$default", Time: "04/Mar/2026:05:06:07 +0000", TimeEpoch: 1772600767000}
			if c != want || e.Version != "2.0" || e.RouteKey != "$default" {
				return "context " + mustJSON(c)
			}
			return ""
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if what := c.check(c.event); what != "" {
				t.Errorf("%s in %s", what, mustJSON(c.event))
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAHandlersResultMapsToAnHTTPAnswerAsLambdaMapsIt(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		status  int
		header  http.Header // those that must be there
		body    string
		bad     bool
	}{
		{"an object with statusCode gives its status, headers and body", `{"statusCode": 201, "headers": {"X-A": "1", "Content-Type": "text/plain"}, "body": "made"}`,
			201, http.Header{"X-A": {"1"}, "Content-Type": {"text/plain"}}, "made", false},
		{"an answer without a content type is JSON", `{"statusCode": 200, "body": "{}"}`, 200, http.Header{"Content-Type": {"application/json"}}, "{}", false},
		{"cookies become a Set-Cookie each", `{"statusCode": 200, "cookies": ["a=1; Path=/", "b=2"]}`, 200, http.Header{"Set-Cookie": {"a=1; Path=/", "b=2"}}, "", false},
		{"a base64 body is decoded", `{"statusCode": 200, "body": "AAH/", "isBase64Encoded": true}`, 200, nil, "\x00\x01\xff", false},
		{"numbers in headers are written as they are", `{"statusCode": 200, "headers": {"X-Count": 3}}`, 200, http.Header{"X-Count": {"3"}}, "", false},
		{"the platform frames the answer whatever the handler says", `{"statusCode": 200, "headers": {"Content-Length": "99"}, "body": "ok"}`, 200, nil, "ok", false},
		{"an object without statusCode is a 200 JSON body", `{"message": "hi"}`, 200, http.Header{"Content-Type": {"application/json"}}, `{"message": "hi"}`, false},
		{"a string is a 200 JSON body", `"hello"`, 200, http.Header{"Content-Type": {"application/json"}}, `"hello"`, false},
		{"null is a 200 JSON body", `null`, 200, nil, `null`, false},
		{"a statusCode that is not a status is refused", `{"statusCode": 1000}`, 0, nil, "", true},
		{"a statusCode that is not a number is refused", `{"statusCode": "ok"}`, 0, nil, "", true},
		{"a body that is not base64 is refused", `{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}`, 0, nil, "", true},
		{"a body that is not a string is refused", `{"statusCode": 200, "body": {"a": 1}}`, 0, nil, "", true},
		{"a header that is an object is refused", `{"statusCode": 200, "headers": {"X": {}}}`, 0, nil, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := urlAnswerOf([]byte(c.payload))
			if c.bad {
				if !errors.Is(err, errBadURLAnswer) {
					t.Fatalf("got %v, want errBadURLAnswer", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.status != c.status || string(a.body) != c.body {
				t.Errorf("got %d %q, want %d %q", a.status, a.body, c.status, c.body)
			}
			for k, v := range c.header {
				if !reflect.DeepEqual(a.header.Values(k), v) {
					t.Errorf("header %s: %q, want %q", k, a.header.Values(k), v)
				}
			}
			if a.header.Get("Content-Length") != "" {
				t.Error("the handler's Content-Length was kept")
			}
		})
	}
}

func TestTheCORSPolicyAnswersPreflightAndMarksAllowedOrigins(t *testing.T) {
	policy := &model.CORS{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"},
		AllowHeaders: []string{"X-Thing"}, ExposeHeaders: []string{"X-Out"}, MaxAge: 300, AllowCredentials: true}
	preflight := func(origin string) *http.Request {
		r := httptest.NewRequest("OPTIONS", "/fn/team/hello/", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		return r
	}
	cases := []struct {
		name  string
		h     func() http.Header
		want  map[string]string // "" for a header that must be absent
		check bool
	}{
		{"an allowed origin's preflight gets every Allow header", func() http.Header {
			h := http.Header{}
			preflightHeaders(h, preflight("https://app.example"), policy)
			return h
		}, map[string]string{"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "GET, POST",
			"Access-Control-Allow-Headers": "X-Thing", "Access-Control-Max-Age": "300", "Access-Control-Allow-Credentials": "true"}, true},
		{"another origin's preflight gets none", func() http.Header {
			h := http.Header{}
			preflightHeaders(h, preflight("https://evil.example"), policy)
			return h
		}, map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""}, true},
		{"a wildcard policy answers with what was asked", func() http.Header {
			h := http.Header{}
			r := preflight("https://any.example")
			r.Header.Set("Access-Control-Request-Headers", "x-a, x-b")
			preflightHeaders(h, r, &model.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}})
			return h
		}, map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "x-a, x-b"}, true},
		{"an allowed origin's answer says so", func() http.Header {
			h := http.Header{"Access-Control-Allow-Origin": {"set by the function"}}
			corsHeaders(h, "https://app.example", policy)
			return h
		}, map[string]string{"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Expose-Headers": "X-Out", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}, true},
		{"another origin's answer has no Allow-Origin", func() http.Header {
			h := http.Header{}
			corsHeaders(h, "https://evil.example", policy)
			return h
		}, map[string]string{"Access-Control-Allow-Origin": ""}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.h()
			for k, v := range c.want {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
		})
	}
}

// The URL routes refuse bad settings with a sentence and keep the stored
// URL; the endpoint answers 404 for a function without a URL and 401 for
// a key URL called without a key.
func TestFunctionURLRoutesRefuseBadInputAndKeepTheStoredURL(t *testing.T) {
	a := newTestAPI(t)
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "hello", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, CodeSHA256: "aa"}
	if _, err := fsm.Apply(context.Background(), a.cp, fsm.UpsertFunction{Function: fn, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	w := a.must(201, req{method: "PUT", path: "/v1/functions/hello/url", body: `{"auth": "key", "cors": {"allow_origins": ["https://app.example"]}}`, key: a.admin})
	var u client.FunctionURL
	if err := json.Unmarshal(w.Body.Bytes(), &u); err != nil || u.URL != "http://example.com/fn/default/hello/" || u.Auth != "key" {
		t.Fatalf("created: %s %v", w.Body, err)
	}
	cases := []struct {
		name        string
		r           req
		status      int
		code, about string
	}{
		{"an unknown auth mode", req{method: "PUT", path: "/v1/functions/hello/url", body: `{"auth": "iam"}`, key: a.admin}, 400, "BadRequest", "iam"},
		{"a CORS origin with a path", req{method: "PUT", path: "/v1/functions/hello/url", body: `{"cors": {"allow_origins": ["https://a.example/x"]}}`, key: a.admin}, 400, "BadRequest", "origin"},
		{"a CORS max age of a week", req{method: "PUT", path: "/v1/functions/hello/url", body: `{"cors": {"allow_origins": ["*"], "max_age": 604800}}`, key: a.admin}, 400, "BadRequest", "max age"},
		{"a setting nobody knows", req{method: "PUT", path: "/v1/functions/hello/url", body: `{"colour": "red"}`, key: a.admin}, 400, "BadRequest", "colour"},
		{"a URL for a function that does not exist", req{method: "PUT", path: "/v1/functions/nope/url", body: `{}`, key: a.admin}, 404, "NotFound", "nope"},
		{"a function without a URL", req{method: "GET", path: "/fn/default/nope/"}, 404, "NotFound", "no URL"},
		{"a key URL without a key", req{method: "GET", path: "/fn/default/hello/"}, 401, "Unauthorized", ""},
	}
	before := a.stored()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := a.do(c.r)
			var body client.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%d, body %q is not the error shape", w.Code, w.Body.String())
			}
			if w.Code != c.status || body.Error.Code != c.code || !strings.Contains(body.Error.Message, c.about) {
				t.Errorf("%d %s %q, want %d %s mentioning %q", w.Code, body.Error.Code, body.Error.Message, c.status, c.code, c.about)
			}
		})
	}
	if after := a.stored(); before != after {
		t.Errorf("refused requests changed the stored state:\nbefore %s\nafter  %s", before, after)
	}
	got := a.must(200, req{method: "GET", path: "/v1/functions/hello/url", key: a.admin})
	if !strings.Contains(got.Body.String(), "https://app.example") {
		t.Errorf("the stored URL lost its CORS policy: %s", got.Body)
	}
}
