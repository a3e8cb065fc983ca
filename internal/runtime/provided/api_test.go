package provided

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiServer serves a fresh API over HTTP for one test.
func apiServer(t *testing.T, limit int64) (*API, string) {
	t.Helper()
	api := NewAPI("arn:aws:lambda:local:000000000000:function:fn", limit)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go api.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	return api, "http://" + ln.Addr().String() + "/2018-06-01/runtime"
}

func post(t *testing.T, url, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// next asks for the next event as a bootstrap does, in the background.
func next(t *testing.T, base string) <-chan *http.Response {
	t.Helper()
	ch := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(base + "/invocation/next")
		if err != nil {
			t.Error(err)
			close(ch)
			return
		}
		ch <- resp
	}()
	return ch
}

func outcome(t *testing.T, api *API) Outcome {
	t.Helper()
	select {
	case o := <-api.Outcomes():
		return o
	case <-time.After(time.Minute):
		t.Fatal("no outcome within a minute")
	}
	return Outcome{}
}

func TestNextHandsTheEventWithLambdasHeaders(t *testing.T) {
	api, base := apiServer(t, 1<<20)
	got := next(t, base)
	deadline := time.UnixMilli(1_800_000_000_123)
	select {
	case <-api.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the first next did not make the API ready")
	}
	api.Invoke(Invocation{RequestID: "req-1", Deadline: deadline, Event: []byte(`{"a":1}`), TraceID: "Root=1-x"})
	resp := <-got
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := map[string]string{
		HeaderRequestID:   "req-1",
		HeaderDeadline:    strconv.FormatInt(deadline.UnixMilli(), 10),
		HeaderFunctionARN: "arn:aws:lambda:local:000000000000:function:fn",
		HeaderTraceID:     "Root=1-x",
		"Content-Type":    "application/json",
	}
	for k, v := range want {
		if resp.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if resp.StatusCode != 200 || string(body) != `{"a":1}` {
		t.Fatalf("next: %d %s", resp.StatusCode, body)
	}
	if code, b := post(t, base+"/invocation/req-1/response", `{"ok":true}`, nil); code != http.StatusAccepted || b != `{"status":"OK"}` {
		t.Fatalf("response: %d %s", code, b)
	}
	if o := outcome(t, api); !o.OK || o.RequestID != "req-1" || string(o.Body) != `{"ok":true}` {
		t.Fatalf("outcome: %+v", o)
	}
}

func TestAnInvocationsOutcome(t *testing.T) {
	cases := []struct {
		name   string
		path   string // response or error
		body   string
		header string // Lambda-Runtime-Function-Error-Type
		ok     bool
		want   string
	}{
		{"a JSON response is the result as it is", "response", `[1, 2]`, "", true, `[1, 2]`},
		{"an empty response is null", "response", ``, "", true, `null`},
		{"a response that is not JSON becomes a JSON string", "response", `hello there`, "", true, `"hello there"`},
		{"an error document keeps its message, type and stack", "error",
			`{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a.go:1"]}`, "Unhandled", false,
			`{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a.go:1"]}`},
		{"an error without a type takes the header's", "error", `{"errorMessage":"boom"}`, "Custom.Kind", false,
			`{"errorMessage":"boom","errorType":"Custom.Kind"}`},
		{"an error with neither type is Unhandled", "error", `{"errorMessage":"boom"}`, "", false,
			`{"errorMessage":"boom","errorType":"Unhandled"}`},
		{"an error that is not a document becomes the message", "error", `it broke`, "", false,
			`{"errorMessage":"it broke","errorType":"Unhandled"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api, base := apiServer(t, 1<<20)
			got := next(t, base)
			api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Second), Event: []byte(`{}`)})
			(<-got).Body.Close()
			hdr := map[string]string{}
			if c.header != "" {
				hdr[HeaderErrorType] = c.header
			}
			if code, b := post(t, base+"/invocation/r/"+c.path, c.body, hdr); code != http.StatusAccepted {
				t.Fatalf("post: %d %s", code, b)
			}
			o := outcome(t, api)
			if o.OK != c.ok || string(o.Body) != c.want {
				t.Fatalf("outcome %+v (%s), want ok=%v %s", o, o.Body, c.ok, c.want)
			}
		})
	}
}

func TestAnswersTheAPIRefuses(t *testing.T) {
	api, base := apiServer(t, 1<<20)
	got := next(t, base)
	api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Second), Event: []byte(`{}`)})
	(<-got).Body.Close()

	errType := func(body string) string {
		var e struct{ ErrorType string }
		json.Unmarshal([]byte(body), &e)
		return e.ErrorType
	}
	if code, b := post(t, base+"/invocation/other/response", `1`, nil); code != http.StatusBadRequest || errType(b) != "InvalidRequestID" {
		t.Fatalf("a response for another request id: %d %s", code, b)
	}
	if code, _ := post(t, base+"/invocation/r/response", `1`, nil); code != http.StatusAccepted {
		t.Fatalf("the response: %d", code)
	}
	outcome(t, api)
	if code, b := post(t, base+"/invocation/r/error", `{}`, nil); code != http.StatusBadRequest || errType(b) != "InvalidRequestID" {
		t.Fatalf("a second answer to the same invocation: %d %s", code, b)
	}
	if code, b := post(t, base+"/init/error", `{"errorMessage":"late"}`, nil); code != http.StatusForbidden || errType(b) != "InvalidStateTransition" {
		t.Fatalf("an init error after the first next: %d %s", code, b)
	}
	resp, err := http.Get(base + "/invocation/r/response")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET of a POST route: %d", resp.StatusCode)
	}
}

func TestAnInitErrorIsDeliveredBeforeTheFirstNext(t *testing.T) {
	api, base := apiServer(t, 1<<20)
	code, _ := post(t, base+"/init/error", `{"errorMessage":"no config","errorType":"Custom.Init"}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("init error: %d", code)
	}
	select {
	case doc := <-api.InitErrors():
		if string(doc) != `{"errorMessage":"no config","errorType":"Custom.Init"}` {
			t.Fatalf("init error document: %s", doc)
		}
	case <-time.After(time.Minute):
		t.Fatal("no init error")
	}
	if code, _ := post(t, base+"/init/error", `{}`, nil); code != http.StatusForbidden {
		t.Fatalf("a second init error: %d", code)
	}
	resp, err := http.Get(base + "/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("next after an init error: %d", resp.StatusCode)
	}
	select {
	case <-api.Ready():
		t.Fatal("a next after an init error made the API ready")
	default:
	}
}

func TestAResponseOverTheLimitFailsTheInvocation(t *testing.T) {
	api, base := apiServer(t, 16)
	got := next(t, base)
	api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Second), Event: []byte(`{}`)})
	(<-got).Body.Close()
	code, _ := post(t, base+"/invocation/r/response", `"`+strings.Repeat("x", 64)+`"`, nil)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversized response: %d", code)
	}
	o := outcome(t, api)
	var e struct{ ErrorType string }
	if o.OK || json.Unmarshal(o.Body, &e) != nil || e.ErrorType != ErrTypeTooLarge {
		t.Fatalf("outcome: %+v %s", o, o.Body)
	}
}
