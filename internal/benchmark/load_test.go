package benchmark

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"nimbus/pkg/client"
)

// TestLoadCountsWhatTheServerAnswered runs the load generator against a
// server that answers, in turn, a 200 framed by Content-Length, a chunked
// 200, a 429, a function error and a 200 that closes the connection. The
// generator's counts must be the server's, less at most one cut-off
// request per client, and it must keep its connections alive.
func TestLoadCountsWhatTheServerAnswered(t *testing.T) {
	const clients, stopAfter = 4, 500
	var n, ok, refused, failed, badRequests, conns atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/prefix/v1/functions/f/invoke" || r.Header.Get("Authorization") != "Bearer tok" || string(body) != "{}" {
			badRequests.Add(1)
		}
		switch n.Add(1) % 5 {
		case 0:
			ok.Add(1)
			w.Header().Set("Content-Length", "4")
			w.Write([]byte("null"))
		case 1:
			ok.Add(1)
			w.Write([]byte(`{"a":`)) // no length: the flush makes it chunked
			w.(http.Flusher).Flush()
			w.Write([]byte(strings.Repeat("1", 5000) + "}"))
		case 2:
			refused.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
		case 3:
			failed.Add(1)
			w.Header().Set(client.HeaderFunctionError, "Unhandled")
			w.Write([]byte(`{"errorMessage":"boom"}`))
		case 4:
			ok.Add(1)
			w.Header().Set("Connection", "close")
			w.Write([]byte("null"))
		}
		if n.Load() >= stopAfter {
			cancel()
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	target, err := newLoadTarget(srv.URL+"/prefix/", "tok", "/v1/functions/f/invoke", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	got := load(ctx, target, clients)
	if badRequests.Load() != 0 {
		t.Fatalf("%d requests were not the prepared POST", badRequests.Load())
	}
	for _, c := range []struct {
		name      string
		got, sent int64
	}{{"served", got.Served, ok.Load()}, {"refused", got.Refused, refused.Load()}, {"failed", got.Failed, failed.Load()}} {
		if c.got > c.sent || c.got < c.sent-clients {
			t.Errorf("%s = %d; the server sent %d such answers (%d clients may be cut off)", c.name, c.got, c.sent, clients)
		}
	}
	// Every fifth answer closes its connection; the others keep theirs.
	if max := n.Load()/5 + 2*clients; conns.Load() > max {
		t.Errorf("%d connections for %d requests: keep-alive is not kept (want at most %d)", conns.Load(), n.Load(), max)
	}
}

// TestLoadStopsWhenTheContextEnds: a server that never answers does not
// hold the load generator past its context, and nothing is counted.
func TestLoadStopsWhenTheContextEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c // read nothing, answer nothing
		}
	}()
	target, err := newLoadTarget("http://"+l.Addr().String(), "", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan loadCounts)
	go func() { done <- load(ctx, target, 2) }()
	<-accepted
	<-accepted
	cancel()
	if got := <-done; got != (loadCounts{}) {
		t.Errorf("counts %+v after a server that never answered; want none", got)
	}
}

func TestReadAnswerRefusesWhatIsNotHTTP(t *testing.T) {
	for _, in := range []string{
		"",
		"SSH-2.0-OpenSSH\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnullXX0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		if status, _, _, err := readAnswer(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readAnswer(%q) = %d, no error", in, status)
		}
	}
	// A body without framing runs to the end, and the connection is spent.
	status, funcErr, keep, err := readAnswer(bufio.NewReader(strings.NewReader("HTTP/1.0 200 OK\r\n\r\nnull")))
	if err != nil || status != 200 || funcErr || keep {
		t.Errorf("an unframed HTTP/1.0 answer: %d %v keep=%v %v", status, funcErr, keep, err)
	}
}

func TestNewLoadTargetRefusesOtherSchemes(t *testing.T) {
	for _, base := range []string{"ftp://127.0.0.1/", "127.0.0.1:8080", "http://[::1"} {
		if _, err := newLoadTarget(base, "", "/", nil); err == nil {
			t.Errorf("newLoadTarget(%q) accepted it", base)
		}
	}
}
