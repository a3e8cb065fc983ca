package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"nimbus/internal/model"
)

// urlEvent is the event a function URL request becomes: API Gateway's
// HTTP payload format 2.0, as Lambda's function URLs send it.
type urlEvent struct {
	Version               string            `json:"version"`  // "2.0"
	RouteKey              string            `json:"routeKey"` // "$default"
	RawPath               string            `json:"rawPath"`  // after /fn/{namespace}/{name}, from "/"
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"` // lower-case names; repeated values joined by ","
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        urlRequestContext `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

type urlRequestContext struct {
	AccountID    string  `json:"accountId"` // the namespace
	APIID        string  `json:"apiId"`     // the function
	DomainName   string  `json:"domainName"`
	DomainPrefix string  `json:"domainPrefix"`
	HTTP         urlHTTP `json:"http"`
	RequestID    string  `json:"requestId"`
	RouteKey     string  `json:"routeKey"`
	Stage        string  `json:"stage"`
	Time         string  `json:"time"`      // 02/Jan/2006:15:04:05 -0700
	TimeEpoch    int64   `json:"timeEpoch"` // milliseconds
}

type urlHTTP struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// urlRequest is what a function URL request's event is made of.
type urlRequest struct {
	r         *http.Request
	url       model.FunctionURL
	requestID string
	body      []byte
	now       time.Time
	// hide lists the headers (lower case) the event leaves out: the
	// credentials the platform checked for a URL with auth key.
	hide []string
	// hideCookie is a cookie the event leaves out (the session's).
	hideCookie string
}

// newURLEvent builds the event of a function URL request. A body is text
// when its Content-Type says so (text/*, JSON, XML, a form) and it is
// valid UTF-8; any other is base64, with isBase64Encoded.
func newURLEvent(u urlRequest) urlEvent {
	r := u.r
	rawPath := rawPathOf(r.URL.EscapedPath())
	e := urlEvent{
		Version: "2.0", RouteKey: "$default", RawPath: rawPath, RawQueryString: r.URL.RawQuery,
		Headers: make(map[string]string, len(r.Header)+1),
		RequestContext: urlRequestContext{
			AccountID: u.url.Namespace, APIID: u.url.Function,
			DomainName: r.Host, DomainPrefix: domainPrefix(r.Host),
			HTTP:      urlHTTP{Method: r.Method, Path: rawPath, Protocol: r.Proto, SourceIP: sourceIP(r.RemoteAddr), UserAgent: r.UserAgent()},
			RequestID: u.requestID, RouteKey: "$default", Stage: "$default",
			Time: u.now.UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: u.now.UnixMilli(),
		},
	}
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if lower == "cookie" || slices.Contains(u.hide, lower) {
			continue
		}
		e.Headers[lower] = strings.Join(values, ",")
	}
	if r.Host != "" {
		e.Headers["host"] = r.Host
	}
	for _, line := range r.Header.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			c = strings.TrimSpace(c)
			if c == "" || (u.hideCookie != "" && strings.HasPrefix(c, u.hideCookie+"=")) {
				continue
			}
			e.Cookies = append(e.Cookies, c)
		}
	}
	if q := r.URL.Query(); len(q) > 0 {
		e.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			e.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(u.body) > 0 {
		if textual(r.Header.Get("Content-Type")) && utf8.Valid(u.body) {
			e.Body = string(u.body)
		} else {
			e.Body, e.IsBase64Encoded = base64.StdEncoding.EncodeToString(u.body), true
		}
	}
	return e
}

// rawPathOf is the part of an escaped path /fn/{namespace}/{name}... after
// the function's prefix, starting with "/".
func rawPathOf(escaped string) string {
	rest := strings.TrimPrefix(escaped, "/fn/")
	_, rest, _ = strings.Cut(rest, "/") // the namespace
	_, rest, _ = strings.Cut(rest, "/") // the function
	return "/" + rest
}

// domainPrefix is the first label of host (without its port).
func domainPrefix(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	first, _, _ := strings.Cut(host, ".")
	return first
}

func sourceIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// textual reports whether a body of this Content-Type is text: text/*,
// JSON, XML or a URL-encoded form.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/x-www-form-urlencoded":
		return true
	}
	return false
}

// urlAnswer is what a function URL answers.
type urlAnswer struct {
	status int
	header http.Header
	body   []byte
}

// errBadURLAnswer marks a handler's result that does not map to an HTTP
// answer (a statusCode that is not a status, a body that is not a string,
// base64 that does not decode).
var errBadURLAnswer = errors.New("the function's result is not a valid function URL answer")

// platformHeaders are the headers a function's answer may not set: the
// platform frames the answer itself.
var platformHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection"}

// urlAnswerOf maps a handler's result to an HTTP answer, as Lambda does:
// a JSON object with statusCode gives that status, its headers, cookies
// (a Set-Cookie each) and body (decoded from base64 with
// isBase64Encoded), Content-Type application/json unless its headers say
// otherwise; any other JSON value (an object without statusCode too) is a
// 200 whose body is that JSON. A result that cannot be mapped is
// errBadURLAnswer.
func urlAnswerOf(payload []byte) (urlAnswer, error) {
	a := urlAnswer{status: http.StatusOK, header: http.Header{}}
	a.header.Set("Content-Type", "application/json")
	var fields map[string]json.RawMessage
	if trimmed := bytes.TrimSpace(payload); len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &fields) != nil || fields["statusCode"] == nil {
		a.body = payload
		return a, nil
	}
	var out struct {
		StatusCode      json.Number                `json:"statusCode"`
		Headers         map[string]json.RawMessage `json:"headers"`
		Cookies         []string                   `json:"cookies"`
		Body            *string                    `json:"body"`
		IsBase64Encoded bool                       `json:"isBase64Encoded"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return a, fmt.Errorf("%w: %v", errBadURLAnswer, err)
	}
	status, err := strconv.Atoi(out.StatusCode.String())
	if err != nil || status < 100 || status > 599 {
		return a, fmt.Errorf("%w: statusCode %s is not a whole number from 100 to 599", errBadURLAnswer, out.StatusCode)
	}
	a.status = status
	for name, raw := range out.Headers {
		v, err := headerValue(raw)
		if err != nil {
			return a, fmt.Errorf("%w: header %q: %v", errBadURLAnswer, name, err)
		}
		if slices.ContainsFunc(platformHeaders, func(h string) bool { return strings.EqualFold(h, name) }) {
			continue
		}
		a.header.Set(name, v)
	}
	for _, c := range out.Cookies {
		a.header.Add("Set-Cookie", c)
	}
	if out.Body != nil {
		a.body = []byte(*out.Body)
		if out.IsBase64Encoded {
			if a.body, err = base64.StdEncoding.DecodeString(*out.Body); err != nil {
				return a, fmt.Errorf("%w: isBase64Encoded is true but body is not base64: %v", errBadURLAnswer, err)
			}
		}
	}
	return a, nil
}

// headerValue is a header's value in a handler's answer: a string, or a
// number or boolean as written.
func headerValue(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v.(type) {
	case float64, bool:
		return string(raw), nil
	}
	return "", errors.New("not a string, number or boolean")
}

// functionErrorBody is a function URL's answer (502) when the function
// failed: its error and trace stay in its record and log.
var functionErrorBody = []byte(`{"message":"Internal Server Error"}`)

// corsOrigin returns the Access-Control-Allow-Origin that policy c gives
// origin: "*" when c allows every origin, origin when c names it, "" when
// c does not allow it (or there is none).
func corsOrigin(c *model.CORS, origin string) string {
	if c == nil || origin == "" {
		return ""
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// preflightHeaders sets the headers of the answer (204) to preflight
// request r under policy c: the Access-Control-Allow-* headers when c
// allows r's origin, none when it does not (which the browser takes as a
// refusal). The browser checks the method and headers it asks for
// against the lists; a "*" list answers with what was asked.
func preflightHeaders(h http.Header, r *http.Request, c *model.CORS) {
	h.Add("Vary", "Origin")
	allow := corsOrigin(c, r.Header.Get("Origin"))
	if allow == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	methods := c.AllowMethods
	if len(methods) == 0 || slices.Contains(methods, "*") {
		methods = []string{r.Header.Get("Access-Control-Request-Method")}
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	headers := c.AllowHeaders
	if slices.Contains(headers, "*") {
		headers = []string{r.Header.Get("Access-Control-Request-Headers")}
	}
	if v := strings.Join(headers, ", "); v != "" {
		h.Set("Access-Control-Allow-Headers", v)
	}
	if c.MaxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// corsHeaders sets, on an answer to a request from origin, the CORS
// headers policy c gives it (replacing any the function set): nothing
// but Vary when c does not allow the origin.
func corsHeaders(h http.Header, origin string, c *model.CORS) {
	if c == nil {
		return
	}
	h.Add("Vary", "Origin")
	allow := corsOrigin(c, origin)
	if allow == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
