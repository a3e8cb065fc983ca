package provided

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Runtime API speaks HTTP/1.1 through a server of its own, not
// net/http's: an invocation is two requests on the bootstrap's
// connection, in its critical path, and net/http spends on each what this
// endpoint does not need (a background read of the connection started
// and stopped around every handler, a context, header maps, a pooled
// response writer flushed apart from its headers). This one parses a
// request into the few fields the API reads, answers with one write, and
// reads the connection only for the next request.
//
// It is strict, as the endpoint serves its own sandbox's bootstrap only:
// origin-form or absolute-form targets, HTTP/1.0 and 1.1 (1.1 with a
// Host), token header names without folded lines, bodies by
// Content-Length or chunked (not both), Expect: 100-continue. Anything
// else is answered 400 (or 417, 431, 501, 505) and the connection
// closed.

// Bounds of a request's head.
const (
	maxLine  = 8 << 10  // a request line or header line (the reader's buffer)
	maxHead  = 64 << 10 // the whole head
	maxLines = 100      // header lines
)

// Serve serves the Runtime API on ln's connections (each on a goroutine
// of its own) until ln is closed, then closes them and returns the
// error Accept ended with.
func (a *API) Serve(ln net.Listener) error {
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && isTemporary(err) {
				time.Sleep(5 * time.Millisecond) // out of descriptors: as net/http, wait a little
				continue
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		go func() {
			a.serveConn(c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// isTemporary reports whether an Accept error is one net/http retries
// (EMFILE, ENFILE, ECONNABORTED and the like).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// request is what the API reads of a request.
type request struct {
	method    string
	path      string // the target's path, escaped, without its query
	length    int64  // Content-Length; -1 without one
	chunked   bool   // Transfer-Encoding: chunked
	expect    bool   // Expect: 100-continue
	close     bool   // the connection ends after the answer
	errorType string // Lambda-Runtime-Function-Error-Type
}

// httpError is a request the server refuses: its status, and why.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func malformed(msg string) error { return &httpError{http.StatusBadRequest, msg} }

// conn is one of the bootstrap's connections: its requests are read and
// answered one after the other, on one goroutine (the reads of a
// GET .../next's watch aside, see next).
type conn struct {
	a   *API
	c   net.Conn
	br  *bufio.Reader
	out []byte // the answer being written
}

// serveConn serves c's requests until it ends, sends what the server
// cannot parse, or asks for its close.
func (a *API) serveConn(c net.Conn) {
	cn := &conn{a: a, c: c, br: bufio.NewReaderSize(c, maxLine)}
	defer cn.linger()
	for {
		r, err := cn.readRequest()
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				cn.respond(he.status, nil, errorJSON("InvalidRequest", he.msg), true)
			}
			return
		}
		if !cn.serve(&r) || r.close {
			return
		}
	}
}

// linger ends the connection's writes and reads what the client still
// sends for a while (as net/http does before closing): closed with
// unread data, the connection would be reset, and the client could lose
// the answer it was sent last.
func (cn *conn) linger() {
	cw, ok := cn.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	cn.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, cn.br, 256<<10)
}

// serve answers one request; false when the connection must end.
func (cn *conn) serve(r *request) bool {
	route, id, ok := cutRoute(r.path)
	if !ok {
		cn.discardBody(r)
		return cn.respond(http.StatusNotFound, nil, errorJSON("NotFound", "no such route: "+r.path), r.close)
	}
	want := http.MethodPost
	if route == pathNext {
		want = http.MethodGet
	}
	if r.method != want {
		cn.discardBody(r)
		return cn.respond(http.StatusMethodNotAllowed, []string{"Allow", want}, errorJSON("MethodNotAllowed", r.method+" of "+r.path), r.close)
	}
	if route == pathNext {
		return cn.next(r)
	}
	body, err := cn.readBody(r)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			return false // the connection failed
		}
		if he.status == http.StatusRequestEntityTooLarge {
			status, doc := cn.a.tooLarge(id)
			cn.respond(status, nil, doc, true)
			return false // what is left of the body is not read
		}
		cn.respond(he.status, nil, errorJSON("InvalidRequest", he.msg), true)
		return false
	}
	var status int
	var doc []byte
	switch route {
	case pathResponse:
		status, doc = cn.a.answer(id, true, body, "")
	case pathError:
		status, doc = cn.a.answer(id, false, body, r.errorType)
	default: // pathInitError
		status, doc = cn.a.initError(body, r.errorType)
	}
	return cn.respond(status, nil, doc, r.close)
}

// next answers a GET .../next with the invocation Invoke hands over. While
// it waits, the connection is watched: the bootstrap may close it (a
// client's timeout) and ask again on another, which must get the event
// instead. The watch's read is the one the next request needs anyway, so
// it costs nothing once the answer is out.
func (cn *conn) next(r *request) bool {
	if r.length > 0 || r.chunked {
		if _, err := cn.readBody(r); err != nil {
			return false
		}
	}
	if !cn.a.next() {
		return cn.respond(http.StatusForbidden, nil, errorJSON("InvalidStateTransition", "the runtime posted an init error: it gets no event"), r.close)
	}
	var inv Invocation
	var watch chan error
	got := false
	select {
	case inv = <-cn.a.pending: // handed over already: no wait to watch
		got = true
	default:
		watch = make(chan error, 1)
		go func() {
			_, err := cn.br.Peek(1)
			watch <- err
		}()
	}
	for !got {
		select {
		case inv = <-cn.a.pending:
			got = true
		case err := <-watch:
			if err != nil {
				return false // the connection ended: the event stays for another next
			}
			watch = nil // a request sent ahead: it waits its turn
		}
	}
	b := cn.head(http.StatusOK, len(inv.Event), r.close)
	b = appendHeader(b, HeaderRequestID, inv.RequestID)
	b = append(b, HeaderDeadline...)
	b = append(b, ": "...)
	b = strconv.AppendInt(b, inv.Deadline.UnixMilli(), 10)
	b = append(b, "\r\n"...)
	b = appendHeader(b, HeaderFunctionARN, cn.a.arn)
	if inv.TraceID != "" {
		b = appendHeader(b, HeaderTraceID, inv.TraceID)
	}
	b = append(b, "\r\n"...)
	cn.out = append(b, inv.Event...)
	_, err := cn.c.Write(cn.out)
	if watch != nil {
		if r.close || err != nil {
			cn.c.SetReadDeadline(time.Now()) // the connection ends: so does the watch, at once
		}
		if <-watch != nil {
			return false
		}
	}
	return err == nil
}

// cutRoute splits an escaped path under rootPath into its route (one of
// the path constants) and request id.
func cutRoute(path string) (route, id string, ok bool) {
	rest, ok := strings.CutPrefix(path, rootPath)
	if !ok {
		return "", "", false
	}
	switch rest {
	case pathNext, pathInitError:
		return rest, "", true
	}
	rest, ok = strings.CutPrefix(rest, "invocation/")
	if !ok {
		return "", "", false
	}
	for _, route := range [...]string{pathResponse, pathError} {
		if escaped, ok := strings.CutSuffix(rest, route[len("invocation/{id}"):]); ok {
			if id, err := url.PathUnescape(escaped); err == nil && id != "" && !strings.Contains(escaped, "/") {
				return route, id, true
			}
			return "", "", false
		}
	}
	return "", "", false
}

// head starts an answer in cn.out: its status line and the headers every
// answer has. The caller adds its own and the blank line.
func (cn *conn) head(status, length int, close bool) []byte {
	b := append(cn.out[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(length), 10)
	b = append(b, "\r\n"...)
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	return b
}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// respond writes an answer with the header pairs kv and body, and
// reports whether the connection goes on.
func (cn *conn) respond(status int, kv []string, body []byte, close bool) bool {
	b := cn.head(status, len(body), close)
	for i := 0; i+1 < len(kv); i += 2 {
		b = appendHeader(b, kv[i], kv[i+1])
	}
	b = append(b, "\r\n"...)
	cn.out = append(b, body...)
	_, err := cn.c.Write(cn.out)
	return err == nil && !close
}

// line reads one line of the head, without its CRLF (or bare LF).
func (cn *conn) line(budget *int) ([]byte, error) {
	l, err := cn.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, &httpError{http.StatusRequestHeaderFieldsTooLarge, "a line of the request's head is over " + strconv.Itoa(maxLine) + " bytes"}
	case err != nil:
		return nil, err
	}
	if *budget -= len(l); *budget < 0 {
		return nil, &httpError{http.StatusRequestHeaderFieldsTooLarge, "the request's head is over " + strconv.Itoa(maxHead) + " bytes"}
	}
	l = l[:len(l)-1]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	for _, c := range l {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, malformed("a control character in the request's head")
		}
	}
	return l, nil
}

// readRequest reads a request's head. An io.EOF before its first byte is
// the connection's orderly end.
func (cn *conn) readRequest() (request, error) {
	r := request{length: -1}
	budget := maxHead
	l, err := cn.line(&budget)
	if err != nil {
		if errors.Is(err, io.EOF) && budget == maxHead {
			return r, io.EOF
		}
		return r, err
	}
	method, rest, ok1 := bytes.Cut(l, []byte{' '})
	target, version, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 {
		return r, malformed("a malformed request line")
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.close = true
	default:
		if bytes.HasPrefix(version, []byte("HTTP/")) {
			return r, &httpError{http.StatusHTTPVersionNotSupported, "HTTP/1.0 and HTTP/1.1 only"}
		}
		return r, malformed("a malformed request line")
	}
	r.method = string(method)
	if r.path, err = targetPath(target); err != nil {
		return r, err
	}
	host := false
	for n := 0; ; n++ {
		l, err := cn.line(&budget)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = malformed("the request's head is cut short")
			}
			return r, err
		}
		if len(l) == 0 {
			break
		}
		if n == maxLines {
			return r, &httpError{http.StatusRequestHeaderFieldsTooLarge, "over " + strconv.Itoa(maxLines) + " header lines"}
		}
		name, value, ok := bytes.Cut(l, []byte{':'})
		if !ok || !isToken(name) {
			return r, malformed("a malformed header line")
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || value[0] == '+' || r.length >= 0 && r.length != n {
				return r, malformed("a malformed Content-Length")
			}
			r.length = n
		case equalFold(name, "Transfer-Encoding"):
			if !equalFold(value, "chunked") || r.chunked {
				return r, &httpError{http.StatusNotImplemented, "Transfer-Encoding: chunked only"}
			}
			r.chunked = true
		case equalFold(name, "Expect"):
			if !equalFold(value, "100-continue") {
				return r, &httpError{http.StatusExpectationFailed, "Expect: 100-continue only"}
			}
			r.expect = true
		case equalFold(name, "Connection"):
			for _, opt := range bytes.Split(value, []byte{','}) {
				opt = bytes.Trim(opt, " \t")
				if equalFold(opt, "close") {
					r.close = true
				} else if equalFold(opt, "keep-alive") && string(version) == "HTTP/1.0" {
					r.close = false
				}
			}
		case equalFold(name, "Host"):
			host = true
		case equalFold(name, HeaderErrorType):
			r.errorType = string(value)
		}
	}
	if r.chunked && r.length >= 0 {
		return r, malformed("both Transfer-Encoding and Content-Length")
	}
	if !host && string(version) == "HTTP/1.1" {
		return r, malformed("no Host header")
	}
	return r, nil
}

// targetPath is the escaped path of a request target in origin form
// (/path?query) or absolute form (http://host/path?query).
func targetPath(target []byte) (string, error) {
	if target[0] == '/' {
		path, _, _ := bytes.Cut(target, []byte{'?'})
		return string(path), nil
	}
	u, err := url.ParseRequestURI(string(target))
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", malformed("a malformed request target")
	}
	return u.EscapedPath(), nil
}

// readBody reads a request's body: at most the API's limit, else an
// *httpError of 413.
func (cn *conn) readBody(r *request) ([]byte, error) {
	limit := cn.a.limit
	if r.length > limit {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge}
	}
	if r.expect && (r.length > 0 || r.chunked) {
		if _, err := io.WriteString(cn.c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return nil, err
		}
	}
	if !r.chunked {
		body := make([]byte, max(r.length, 0))
		if _, err := io.ReadFull(cn.br, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	var body []byte
	budget := maxHead
	for {
		l, err := cn.line(&budget)
		if err != nil {
			return nil, err
		}
		size, _, _ := bytes.Cut(l, []byte{';'}) // chunk extensions: ignored
		n, err := strconv.ParseUint(string(bytes.Trim(size, " \t")), 16, 63)
		if err != nil {
			return nil, malformed("a malformed chunk size")
		}
		if n == 0 {
			break
		}
		if int64(n) > limit-int64(len(body)) {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge}
		}
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(cn.br, body[len(body)-int(n):]); err != nil {
			return nil, err
		}
		if l, err := cn.line(&budget); err != nil || len(l) != 0 {
			return nil, malformed("a chunk not ended by CRLF")
		}
	}
	for { // the trailer: read and dropped
		l, err := cn.line(&budget)
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			return body, nil
		}
	}
}

// discardBody reads a refused request's body, if it is small, so that the
// connection can go on; a large one ends the connection.
func (cn *conn) discardBody(r *request) {
	if r.length > 0 && r.length <= cn.a.limit && !r.expect {
		if _, err := cn.br.Discard(int(r.length)); err == nil {
			return
		}
	}
	if r.length > 0 || r.chunked {
		r.close = true
	}
}

// isToken reports whether b is an HTTP token (a method, a header name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// equalFold reports whether b is s, ASCII letters matched without case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
