package gateway

import (
	"io"
	"net/http"
	"sync"
	"time"
)

const (
	// DefaultBodyTimeout is the time a request body has to arrive, on top
	// of its size at minBodyRate.
	DefaultBodyTimeout = 30 * time.Second
	// minBodyRate is the slowest upload (bytes per second) granted more
	// time than the body timeout: a 50 MB deploy gets 30 s + 500 s.
	minBodyRate = 100 << 10
)

// withBodyDeadline bounds the time a request's body may take to arrive,
// so a client trickling a body (slow loris) cannot hold a connection and
// a handler indefinitely; the header is bounded by the server's
// ReadHeaderTimeout. The deadline is lifted once the body is read, so
// that a long invocation or a stream is not cut by it.
func withBodyDeadline(h http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		d := timeout
		if r.ContentLength > 0 {
			d += time.Duration(r.ContentLength) * time.Second / minBodyRate
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(d)) != nil {
			h.ServeHTTP(w, r) // the connection cannot take deadlines
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read to
// its end or closed.
type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	b.once.Do(b.lift)
	return b.ReadCloser.Close()
}
