package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"nimbus/pkg/client"
)

// The throughput phase's load generator. The client of a throughput run
// shares the machine's two cores with the server it measures, so whatever
// CPU it spends per request is taken from the server: net/http's client
// cost about 130 us of CPU per request here (2026-12-02: 69 % of a core at
// 5,150 rps), as much as the node itself, and capped the figure at what
// the client could send. This one does what wrk does: one goroutine per
// keep-alive HTTP/1.1 connection writing a request prepared once and
// reading just enough of each answer to classify it (status line, the
// headers that frame the body or mark a function error, the body
// discarded). The latency phases keep net/http: there the baseline and
// the invoke go through the same client, so its cost is on both sides.

// loadTarget is one prepared request: where to send it and its bytes.
type loadTarget struct {
	addr    string      // host:port to dial
	tls     *tls.Config // nil for plain http
	request []byte      // the whole request, headers and body
	// build, when set, is called before each request and returns the
	// whole request to send instead of request (a request that must
	// change over time, as a signed one does: compat.go). It is called
	// from every client's goroutine at once, and must be cheap: its CPU
	// is taken from the server measured.
	build func() ([]byte, error)
}

// newLoadTarget prepares a POST of body to path on the server at base
// (http:// or https://, with an optional path prefix), with the token as
// a bearer key.
func newLoadTarget(base, token, path string, body []byte) (*loadTarget, error) {
	t, u, err := newLoadEndpoint(base)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s%s HTTP/1.1\r\nHost: %s\r\n", strings.TrimRight(u.Path, "/"), path, u.Host)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	t.request = b.Bytes()
	return t, nil
}

// newLoadEndpoint returns a target without a request for the server at
// base (http:// or https://, with an optional path prefix), and base
// parsed.
func newLoadEndpoint(base string) (*loadTarget, *url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, nil, fmt.Errorf("benchmark: server URL %q: %w", base, err)
	}
	t := &loadTarget{}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		t.tls = &tls.Config{ServerName: u.Hostname()}
	default:
		return nil, nil, fmt.Errorf("benchmark: server URL %q: the scheme must be http or https", base)
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	return t, u, nil
}

// loadCounts are the answers of a load run: 200s without a function
// error, 429s, and everything else (other statuses, function errors,
// transport errors).
type loadCounts struct {
	Served, Refused, Failed int64
}

// load sends t's request from clients connections, each waiting for its
// answer before sending the next, until ctx ends. Requests cut off by the
// end of ctx are not counted.
func load(ctx context.Context, t *loadTarget, clients int) loadCounts {
	// One Go processor for the generator, as wrk runs one thread: fewer
	// cross-CPU wake-ups of its own, a CPU left to the server (against a
	// long-running node: 5,634-5,716 rps on two processors, 5,997-6,939
	// on one).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var served, refused, failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := &loadConn{target: t}
			// The end of ctx closes the connection, which ends a wait for
			// an answer at once.
			stop := context.AfterFunc(ctx, c.close)
			defer stop()
			defer c.close()
			for ctx.Err() == nil {
				status, funcErr, err := c.roundTrip(ctx)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					failed.Add(1)
				case status == 200 && !funcErr:
					served.Add(1)
				case status == 429:
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return loadCounts{Served: served.Load(), Refused: refused.Load(), Failed: failed.Load()}
}

// loadConn is one client's connection, dialled when first needed and
// again after the server closes it. Only close may be called from another
// goroutine.
type loadConn struct {
	target *loadTarget
	mu     sync.Mutex // guards c against close
	c      net.Conn
	closed bool
	br     *bufio.Reader
}

func (l *loadConn) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.c != nil {
		l.c.Close()
		l.c = nil
	}
}

func (l *loadConn) dial(ctx context.Context) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if l.c != nil {
		return l.c, nil
	}
	var d net.Dialer
	var c net.Conn
	var err error
	if l.target.tls != nil {
		c, err = (&tls.Dialer{NetDialer: &d, Config: l.target.tls}).DialContext(ctx, "tcp", l.target.addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", l.target.addr)
	}
	if err != nil {
		return nil, err
	}
	l.c = c
	if l.br == nil {
		l.br = bufio.NewReaderSize(c, 4096)
	} else {
		l.br.Reset(c)
	}
	return c, nil
}

// drop closes the connection after an error or a Connection: close, so
// that the next round trip dials a new one.
func (l *loadConn) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.Close()
		l.c = nil
	}
}

// roundTrip sends the request and reads its answer: the status and
// whether the function returned an error.
func (l *loadConn) roundTrip(ctx context.Context) (status int, funcErr bool, err error) {
	c, err := l.dial(ctx)
	if err != nil {
		return 0, false, err
	}
	req := l.target.request
	if l.target.build != nil {
		if req, err = l.target.build(); err != nil {
			return 0, false, err
		}
	}
	if _, err := c.Write(req); err != nil {
		l.drop()
		return 0, false, err
	}
	status, funcErr, keep, err := readAnswer(l.br)
	if err != nil || !keep {
		l.drop()
	}
	return status, funcErr, err
}

// The headers that mark a function error: Nimbus's, and the Lambda
// API's (X-Amz-Function-Error).
var (
	funcErrorHeader    = strings.ToLower(client.HeaderFunctionError)
	amzFuncErrorHeader = "x-amz-function-error"
)

// readAnswer reads one HTTP/1.1 response from br and discards its body.
// keep reports whether the connection can carry another request.
func readAnswer(br *bufio.Reader) (status int, funcErr, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, false, fmt.Errorf("benchmark: not an HTTP/1.x status line: %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, false, fmt.Errorf("benchmark: bad status in %q", line)
	}
	keep = line[7] == '1' // HTTP/1.1 keeps the connection unless told not to
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, false, fmt.Errorf("benchmark: bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFold(name, "content-length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, false, fmt.Errorf("benchmark: bad Content-Length %q", value)
			}
		case equalFold(name, "transfer-encoding"):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case equalFold(name, "connection"):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		case equalFold(name, funcErrorHeader), equalFold(name, amzFuncErrorHeader):
			funcErr = len(value) > 0
		}
	}
	switch {
	case chunked:
		err = discardChunks(br)
	case length >= 0:
		_, err = br.Discard(length)
	default:
		// No framing: the body runs to the end of the connection.
		_, err = io.Copy(io.Discard, br)
		keep = false
	}
	if err != nil {
		return 0, false, false, err
	}
	return status, funcErr, keep, nil
}

// discardChunks reads a chunked body and its trailer.
func discardChunks(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("benchmark: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailer, up to the empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return err
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			return err
		}
		if crlf != [2]byte{'\r', '\n'} {
			return errors.New("benchmark: a chunk does not end in CRLF")
		}
	}
}

// equalFold reports whether b is s, ignoring ASCII case (s is lower case).
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
