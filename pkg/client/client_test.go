package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newTestClient starts srv for the duration of the test and returns a
// client for it with token "tok".
func newTestClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return New(srv.URL, "tok", WithHTTPClient(srv.Client()))
}

func TestErrorsDecodeIntoAPIError(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		body        string
		retryAfter  string
		wantCode    string
		wantMessage string
		wantRetry   time.Duration
	}{
		{"an error body gives code and message", 404, `{"error":{"code":"NotFound","message":"function \"x\" not found"}}`, "", "NotFound", `function "x" not found`, 0},
		{"a plain text body falls back to the status text", 502, "upstream down", "", "BadGateway", "Bad Gateway", 0},
		{"an empty body falls back to the status text", 401, "", "", "Unauthorized", "Unauthorized", 0},
		{"a JSON body of another shape falls back to the status text", 500, `{"oops":1}`, "", "InternalServerError", "Internal Server Error", 0},
		{"a throttled answer keeps its Retry-After", 429, `{"error":{"code":"Throttled","message":"slow down"}}`, "2", "Throttled", "slow down", 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, err := c.GetFunction(context.Background(), "x")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.wantCode || ae.Message != tc.wantMessage || ae.RetryAfter != tc.wantRetry {
				t.Fatalf("got %+v, want status %d code %q message %q retry %v", ae, tc.status, tc.wantCode, tc.wantMessage, tc.wantRetry)
			}
		})
	}
}

func TestNetworkFailuresAreReturnedAsIs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := New("http://"+addr, "")
	_, err = c.ListFunctions(context.Background())
	if err == nil {
		t.Fatal("want an error from a closed port")
	}
	var ae *APIError
	if errors.As(err, &ae) {
		t.Fatalf("a network failure became an APIError: %v", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want it to wrap ECONNREFUSED", err)
	}
}

func TestRequestsCarryTheTokenAndEscapedPaths(t *testing.T) {
	var gotAuth, gotPath, gotUA string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath, gotUA = r.Header.Get("Authorization"), r.URL.EscapedPath(), r.Header.Get("User-Agent")
		w.WriteHeader(http.StatusNoContent)
	})
	c = New(c.BaseURL()+"/", "tok", WithUserAgent("test-agent"))
	if err := c.DeleteFunction(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Bearer tok" || gotPath != "/v1/functions/a%2Fb" || gotUA != "test-agent" {
		t.Fatalf("auth %q path %q ua %q", gotAuth, gotPath, gotUA)
	}
}

func TestPutFunctionSendsMultipartConfigAndCode(t *testing.T) {
	zip := []byte("PK\x03\x04 not really a zip but bytes all the same")
	var gotCfg FunctionConfig
	var gotCode []byte
	var gotLen int64
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/functions/hello" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		gotLen = r.ContentLength
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/form-data" {
			t.Errorf("content type %q: %v", r.Header.Get("Content-Type"), err)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(p)
			switch p.FormName() {
			case "config":
				if ct := p.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("config part type %q", ct)
				}
				if err := json.Unmarshal(b, &gotCfg); err != nil {
					t.Error(err)
				}
			case "code":
				if ct := p.Header.Get("Content-Type"); ct != "application/zip" {
					t.Errorf("code part type %q", ct)
				}
				gotCode = b
			default:
				t.Errorf("unexpected part %q", p.FormName())
			}
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(Function{FunctionConfig: gotCfg, Revision: 1, CodeSHA256: "abc"})
	})
	var last, total int64
	calls := 0
	cfg := FunctionConfig{Name: "hello", Handler: "main.handler", MemoryMB: 256, Timeout: Duration(5 * time.Second)}
	fn, created, err := c.PutFunction(context.Background(), cfg, zip, func(done, tot int64) {
		calls++
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		last, total = done, tot
	})
	if err != nil {
		t.Fatal(err)
	}
	if !created || fn.Revision != 1 || fn.Name != "hello" {
		t.Fatalf("fn %+v created %v", fn, created)
	}
	if gotCfg.Name != "hello" || gotCfg.MemoryMB != 256 || gotCfg.Timeout != Duration(5*time.Second) {
		t.Fatalf("server got config %+v", gotCfg)
	}
	if string(gotCode) != string(zip) {
		t.Fatalf("server got code %q", gotCode)
	}
	if calls == 0 || last != total || total != gotLen {
		t.Fatalf("progress: %d calls, last %d, total %d, content length %d", calls, last, total, gotLen)
	}
}

func TestPutFunctionReportsAnUpdate(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"name":"hello","revision":2}`)
	})
	fn, created, err := c.PutFunction(context.Background(), FunctionConfig{Name: "hello"}, []byte("z"), nil)
	if err != nil || created || fn.Revision != 2 {
		t.Fatalf("fn %+v created %v err %v", fn, created, err)
	}
}

func TestInvoke(t *testing.T) {
	var gotHeaders http.Header
	var gotBody string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotHeaders = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set(HeaderRequestID, "req-1")
		if r.Header.Get(HeaderInvocationType) == "async" {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"request_id":"req-async"}`)
			return
		}
		w.Header().Set(HeaderFunctionError, "Unhandled")
		w.Header().Set(HeaderColdStart, "true")
		w.Header().Set(HeaderLogResult, base64.StdEncoding.EncodeToString([]byte("START\nEND\n")))
		io.WriteString(w, `{"errorMessage":"boom","errorType":"ValueError"}`)
	})
	ctx := context.Background()

	res, err := c.Invoke(ctx, "hello", []byte(`{"name":"x"}`), InvokeOptions{LogTail: true})
	if err != nil {
		t.Fatal(err)
	}
	if gotBody != `{"name":"x"}` || gotHeaders.Get(HeaderLogTail) != "true" || gotHeaders.Get(HeaderInvocationType) != "" {
		t.Fatalf("server got body %q headers %v", gotBody, gotHeaders)
	}
	want := InvokeResult{Payload: []byte(`{"errorMessage":"boom","errorType":"ValueError"}`), FunctionError: "Unhandled", RequestID: "req-1", LogTail: "START\nEND\n", Cold: true}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", res, want)
	}

	res, err = c.Invoke(ctx, "hello", []byte(`{}`), InvokeOptions{Async: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequestID != "req-async" || res.Payload != nil {
		t.Fatalf("async result %+v", res)
	}
}

func TestListsUnwrapTheServerEnvelope(t *testing.T) {
	var gotQuery string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		switch r.URL.Path {
		case "/v1/functions":
			io.WriteString(w, `{"functions":[{"name":"a","revision":3}]}`)
		case "/v1/invocations":
			io.WriteString(w, `{"invocations":[{"id":"i1","function":"a","status":"success"}]}`)
		case "/v1/functions/a/logs":
			io.WriteString(w, `{"logs":[]}`)
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	fns, err := c.ListFunctions(ctx)
	if err != nil || len(fns) != 1 || fns[0].Name != "a" || fns[0].Revision != 3 {
		t.Fatalf("functions %+v err %v", fns, err)
	}
	invs, err := c.ListInvocations(ctx, InvocationQuery{Function: "a", Status: "failed", Limit: 5})
	if err != nil || len(invs) != 1 || invs[0].ID != "i1" {
		t.Fatalf("invocations %+v err %v", invs, err)
	}
	if gotQuery != "function=a&limit=5&status=failed" {
		t.Fatalf("invocations query %q", gotQuery)
	}
	logs, err := c.Logs(ctx, "a", LogQuery{RequestID: "r1", Since: 10 * time.Minute})
	if err != nil || logs == nil || len(logs) != 0 {
		t.Fatalf("logs %+v err %v", logs, err)
	}
	if gotQuery != "request_id=r1&since=10m0s" {
		t.Fatalf("logs query %q", gotQuery)
	}
}

func TestFollowLogsParsesServerSentEvents(t *testing.T) {
	stream := ": keepalive\n\n" +
		"event: log\ndata: {\"request_id\":\"r1\",\"function\":\"a\",\"log\":\"START\\nhello\\n\"}\n\n" +
		"event: other\ndata: {\"ignored\":true}\n\n" +
		": another keepalive\n" +
		"event: log\r\ndata:{\"request_id\":\"r2\",\"log\":\"two\"}\r\n\r\n"
	var gotQuery, gotAccept string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotAccept = r.URL.RawQuery, r.Header.Get("Accept")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	})
	var got []LogEntry
	err := c.FollowLogs(context.Background(), "a", LogQuery{Since: time.Minute}, func(e LogEntry) { got = append(got, e) })
	if err != nil {
		t.Fatal(err)
	}
	if gotQuery != "follow=1&since=1m0s" || gotAccept != "text/event-stream" {
		t.Fatalf("query %q accept %q", gotQuery, gotAccept)
	}
	if len(got) != 2 || got[0].RequestID != "r1" || got[0].Log != "START\nhello\n" || got[1].RequestID != "r2" || got[1].Log != "two" {
		t.Fatalf("entries %+v", got)
	}
}

func TestFollowLogsEndsWithItsContext(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: log\ndata: {\"log\":\"one\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	err := c.FollowLogs(ctx, "a", LogQuery{}, func(e LogEntry) {
		if e.Log == "one" {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestFollowLogsReportsAPIErrors(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"NotFound","message":"no such function"}}`)
	})
	err := c.FollowLogs(context.Background(), "a", LogQuery{}, func(LogEntry) {})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("err = %v", err)
	}
}

func TestClusterAndHealth(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, `{"status":"ok"}`)
		case "/v1/cluster":
			io.WriteString(w, `{"servers":[{"id":"s1","role":"leader","term":2}],"workers":[{"id":"w1","slots":4}]}`)
		}
	})
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Cluster(context.Background())
	if err != nil || len(cl.Servers) != 1 || cl.Servers[0].Role != "leader" || cl.Workers[0].Slots != 4 {
		t.Fatalf("cluster %+v err %v", cl, err)
	}
}

func TestAnInvalidBaseURLFailsEveryCall(t *testing.T) {
	c := New("127.0.0.1:8080", "")
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadsAreRetriedAfterA503WithRetryAfter(t *testing.T) {
	cases := []struct {
		name       string
		method     string
		retryAfter string
		wantCalls  int
		wantErr    bool
	}{
		{"a read refused while the server catches up is sent again", "GET", "1", 2, false},
		{"a write is not sent again", "DELETE", "1", 1, true},
		{"a 503 without Retry-After is final", "GET", "", 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				calls++
				if calls == 1 {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(http.StatusServiceUnavailable)
					io.WriteString(w, `{"error":{"code":"ServiceUnavailable","message":"this server is catching up with the cluster; retry shortly"}}`)
					return
				}
				if r.Method == "GET" {
					io.WriteString(w, `{"name":"x"}`)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			var err error
			if tc.method == "GET" {
				_, err = c.GetFunction(context.Background(), "x")
			} else {
				err = c.DeleteFunction(context.Background(), "x")
			}
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

func TestARetryWaitEndsWithTheContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	answered := make(chan struct{}, 10)
	hc := &http.Client{Transport: notifyingTransport{srv.Client().Transport, answered}}
	c := New(srv.URL, "tok", WithHTTPClient(hc))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetFunction(ctx, "x")
		errc <- err
	}()
	<-answered // the first 503 is in: the client waits to retry
	cancel()
	var ae *APIError
	if err := <-errc; !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("err = %v, want the 503", err)
	}
}

// notifyingTransport is a real transport that says when an answer came.
type notifyingTransport struct {
	http.RoundTripper
	answered chan<- struct{}
}

func (n notifyingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := n.RoundTripper.RoundTrip(r)
	n.answered <- struct{}{}
	return resp, err
}
