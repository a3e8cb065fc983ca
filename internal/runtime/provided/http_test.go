package provided

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn is a connection to an API's server for requests written by
// hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	host, _, _ = strings.Cut(host, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(req string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads one answer, and its body.
func (rc *rawConn) answer() (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (rc *rawConn) closed() bool {
	_, err := rc.br.ReadByte()
	return errors.Is(err, io.EOF)
}

func TestTheServerRefusesWhatItDoesNotParse(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	cases := []struct {
		name   string
		req    string
		status int
	}{
		{"a request line without a version", "GET /2018-06-01/runtime/invocation/next\r\n\r\n", 400},
		{"a request line with two spaces in a row", "GET  /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"another HTTP version", "GET /2018-06-01/runtime/invocation/next HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"HTTP/1.1 without a Host", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400},
		{"a space before a header's colon", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"a header line folded onto the next", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"a control character in a header", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nX-A: 1\x01\r\n\r\n", 400},
		{"a header line over the reader's buffer", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nX-A: " + long + "\r\n\r\n", 431},
		{"a Content-Length that is not a number", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400},
		{"two different Content-Lengths", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"both Content-Length and chunked", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"a transfer coding other than chunked", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"an expectation other than 100-continue", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417},
		{"a malformed chunk size", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"a target that is neither a path nor an http URL", "GET ftp://x/2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api, base := apiServer(t, 1<<20)
			rc := dialRaw(t, base)
			rc.send(c.req)
			resp, body := rc.answer()
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("%d (close %v) %s, want %d and Connection: close", resp.StatusCode, resp.Close, body, c.status)
			}
			if !rc.closed() {
				t.Fatal("the connection stayed open")
			}
			select {
			case <-api.InitErrors():
				t.Fatal("a refused request posted an init error")
			default:
			}
		})
	}
}

func TestTheServerAnswersUnknownRoutesAndMethodsAndGoesOn(t *testing.T) {
	_, base := apiServer(t, 1<<20)
	rc := dialRaw(t, base)
	rc.send("GET /2018-06-01/runtime/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.answer(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown route: %d", resp.StatusCode)
	}
	rc.send("PUT /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	if resp, _ := rc.answer(); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("PUT of a POST route: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	rc.send("POST /2018-06-01/runtime/invocation/a/b/response HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if resp, _ := rc.answer(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an id with a slash: %d", resp.StatusCode)
	}
}

// The bodies a bootstrap may send: chunked, after a 100 Continue, and two
// requests written at once on one connection (HTTP/1.1 pipelining).
func TestTheServerReadsBodiesHoweverTheyAreSent(t *testing.T) {
	cases := []struct {
		name string
		post string // the response's post, after the next's answer
		want string
	}{
		{"a chunked body with an extension and a trailer",
			"POST /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n[1,\r\n3\r\n 2]\r\n0\r\nX-Trailer: 1\r\n\r\n", `[1, 2]`},
		{"a body sent after 100 Continue",
			"POST /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", `true`},
		{"an absolute-form target and an escaped id",
			"POST http://x/2018-06-01/runtime/invocation/%72/response HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n7", `7`},
		{"HTTP/1.0 with a body",
			"POST /2018-06-01/runtime/invocation/r/response HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api, base := apiServer(t, 1<<20)
			rc := dialRaw(t, base)
			rc.send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
			<-api.Ready()
			api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Minute), Event: []byte(`{"e":1}`)})
			if resp, body := rc.answer(); resp.StatusCode != http.StatusOK || body != `{"e":1}` || resp.Header.Get(HeaderRequestID) != "r" {
				t.Fatalf("next: %d %s", resp.StatusCode, body)
			}
			rc.send(c.post)
			if strings.Contains(c.post, "100-continue") {
				if resp, _ := rc.answer(); resp.StatusCode != http.StatusContinue {
					t.Fatalf("no 100 Continue: %d", resp.StatusCode)
				}
				rc.send("true")
			}
			if resp, body := rc.answer(); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("post: %d %s", resp.StatusCode, body)
			}
			if o := outcome(t, api); !o.OK || string(o.Body) != c.want {
				t.Fatalf("outcome %+v (%s), want %s", o, o.Body, c.want)
			}
		})
	}
}

func TestTheServerServesRequestsSentAhead(t *testing.T) {
	api, base := apiServer(t, 1<<20)
	rc := dialRaw(t, base)
	rc.send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
	<-api.Ready()
	api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Minute), Event: []byte(`{}`)})
	rc.answer()
	// The response and the next next at once: both answered, in order.
	rc.send("POST /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1" +
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.answer(); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("response: %d", resp.StatusCode)
	}
	outcome(t, api)
	api.Invoke(Invocation{RequestID: "s", Deadline: time.Now().Add(time.Minute), Event: []byte(`{}`)})
	if resp, _ := rc.answer(); resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderRequestID) != "s" {
		t.Fatalf("the next sent ahead: %d %s", resp.StatusCode, resp.Header.Get(HeaderRequestID))
	}
}

// A bootstrap whose next gives up (its connection closed) and asks again
// on another connection gets the event: the closed one does not take it.
func TestANextWhoseConnectionClosedLeavesTheEventToTheNextOne(t *testing.T) {
	api, base := apiServer(t, 1<<20)
	first := dialRaw(t, base)
	first.send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
	<-api.Ready()
	first.c.Close()
	second := dialRaw(t, base)
	second.send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
	// Both nexts wait (or the first has gone): the event goes to a live
	// one, whichever, as long as the first is gone by then. Poll until the
	// first's goroutine has seen its end: an event then must reach the
	// second.
	deadline := time.Now().Add(time.Minute)
	for {
		api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Minute), Event: []byte(`{}`)})
		second.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		resp, err := http.ReadResponse(second.br, nil)
		if err == nil {
			if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderRequestID) != "r" {
				t.Fatalf("the second next: %d", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the second next got no event within a minute")
		}
		// The closed connection's next took it: not answered, and its
		// goroutine is gone; ask again.
		if !api.Abandon("r") {
			t.Fatal("the event was answered by nobody, yet not awaiting")
		}
	}
}

// A next that asks for the connection's close gets its event, and then
// the close (an HTTP/1.0 client may read until it).
func TestANextThatAsksForTheCloseGetsItsEventThenTheClose(t *testing.T) {
	for _, req := range []string{
		"GET /2018-06-01/runtime/invocation/next HTTP/1.0\r\n\r\n",
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		api, base := apiServer(t, 1<<20)
		rc := dialRaw(t, base)
		rc.send(req)
		<-api.Ready()
		api.Invoke(Invocation{RequestID: "r", Deadline: time.Now().Add(time.Minute), Event: []byte(`{}`)})
		if resp, body := rc.answer(); resp.StatusCode != http.StatusOK || body != `{}` || !resp.Close {
			t.Fatalf("%q: %d %s, close %v", req, resp.StatusCode, body, resp.Close)
		}
		if !rc.closed() {
			t.Fatalf("%q: the connection stayed open", req)
		}
	}
}
