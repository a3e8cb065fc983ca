package nbio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection: the accepted one
// through Listener (a *Conn), and the dialled one as net gives it.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := Listener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := accepted.(*Conn)
	if !ok {
		t.Fatalf("Accept gave a %T, want *nbio.Conn", accepted)
	}
	t.Cleanup(func() { c.Close(); dialled.Close() })
	return c, dialled
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestConnCarriesBothWaysAndEndsWithEOF(t *testing.T) {
	c, peer := pair(t)
	// More than the socket buffers hold: the writes wait for the reader.
	in, out := randomBytes(t, 8<<20), randomBytes(t, 8<<20)
	errs := make(chan error, 3)
	var got []byte
	go func() {
		_, err := peer.Write(in)
		if err == nil {
			err = peer.(*net.TCPConn).CloseWrite()
		}
		errs <- err
	}()
	go func() {
		var err error
		got, err = io.ReadAll(c)
		errs <- err
	}()
	echoed := make([]byte, len(out))
	go func() {
		_, err := io.ReadFull(peer, echoed)
		errs <- err
	}()
	n, err := c.Write(out)
	if err != nil || n != len(out) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(out))
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, in) {
		t.Errorf("read %d bytes, not the %d written", len(got), len(in))
	}
	if !bytes.Equal(echoed, out) {
		t.Errorf("the peer read other bytes than were written")
	}
	// io.ReadAll stopped at io.EOF; another Read says it again.
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer's close = %d, %v; want 0, EOF", n, err)
	}
}

// A Read waiting in one goroutine and a Write in another keep apart
// (net/http reads in the background while a handler writes).
func TestConnReadsWhileWriting(t *testing.T) {
	c, peer := pair(t)
	read := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(buf[:n])
	}()
	for i := range 100 {
		msg := fmt.Sprintf("answer %d;", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != msg {
			t.Fatalf("peer read %q, %v; want %q", buf, err, msg)
		}
	}
	if _, err := peer.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if got := <-read; got != "request" {
		t.Errorf("the waiting Read got %q, want %q", got, "request")
	}
}

func TestConnHonoursDeadlinesAndClose(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline = %v; want a timeout (os.ErrDeadlineExceeded)", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "tcp" {
		t.Errorf("Read's error %#v is not a net read error", err)
	}

	// A full socket buffer and a write deadline: Write stops with what
	// it wrote.
	big := make([]byte, 64<<20) // more than any socket buffer holds
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
		t.Fatalf("Write past its deadline = %d, %v; want part written and os.ErrDeadlineExceeded", n, err)
	}

	c.Close()
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v; want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v; want net.ErrClosed", err)
	}
}

func TestConnReportsAResetPeer(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with a reset
	peer.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read from a reset connection = %v; want ECONNRESET", err)
	}
}

// Reading and writing a ready connection allocates nothing.
func TestConnCallsDoNotAllocate(t *testing.T) {
	c, peer := pair(t)
	msg, buf := []byte("ping"), make([]byte, 4)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a round trip allocates %.1f times, want 0", allocs)
	}
}

// An HTTP server on Listener serves keep-alive requests, large bodies
// both ways, and a client that goes away.
func TestHTTPServerOnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("0123456789abcdef"), 1<<18)) // 4 MB
			return
		}
		fmt.Fprintf(w, "%d bytes", len(body))
	})}
	go srv.Serve(Listener{ln})
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	for i := range 20 {
		resp, err := hc.Post(url+"/echo", "application/octet-stream", strings.NewReader(strings.Repeat("x", i*1000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d bytes", i*1000); string(b) != want {
			t.Fatalf("request %d answered %q, want %q", i, b, want)
		}
	}
	resp, err := hc.Post(url+"/echo", "application/octet-stream", bytes.NewReader(randomBytes(t, 5<<20)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != fmt.Sprintf("%d bytes", 5<<20) {
		t.Fatalf("a 5 MB body answered %q", b)
	}
	resp, err = hc.Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 4<<20 {
		t.Fatalf("a 4 MB answer read %d bytes, %v", n, err)
	}

	// A client that sends half a request and goes away leaves the
	// server serving others.
	half, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	half.Write([]byte("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"))
	half.Close()
	resp, err = hc.Post(url+"/echo", "text/plain", strings.NewReader("after"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "5 bytes" {
		t.Fatalf("after a vanished client: %q", b)
	}
}

func TestWriterFillsAPipeAndHonoursItsDeadline(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pw, err := NewWriter(w)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MB through a 64 kB pipe: Write waits for the reader.
	data := randomBytes(t, 1<<20)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data))
		io.ReadFull(r, b)
		got <- b
	}()
	if n, err := pw.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(<-got, data) {
		t.Fatal("the reader got other bytes")
	}

	// Nobody reads now: the pipe fills and the deadline ends the wait.
	full := make([]byte, 1<<20)
	w.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := pw.Write(full)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 1<<20 {
		t.Fatalf("Write to a full pipe past its deadline = %d, %v; want part and os.ErrDeadlineExceeded", n, err)
	}
	w.SetWriteDeadline(time.Time{})

	// The reader is gone: EPIPE, as (*os.File).Write reports it.
	r.Close()
	_, err = pw.Write([]byte("x"))
	var pe *os.PathError
	if !errors.Is(err, syscall.EPIPE) || !errors.As(err, &pe) || pe.Op != "write" {
		t.Fatalf("Write with no reader = %v; want a write *os.PathError with EPIPE", err)
	}
	w.Close()
	if _, err := pw.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v; want os.ErrClosed", err)
	}
}

func TestWriterRefusesABlockingFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := NewWriter(f); err == nil {
		t.Fatal("NewWriter accepted a regular file, whose raw writes could block")
	}
}

func TestReadPollsWithoutWaiting(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	read := func() (n int, err error) {
		buf := make([]byte, 16)
		rc.Control(func(fd uintptr) { n, err = Read(fd, buf) })
		return n, err
	}
	if n, err := read(); n != 0 || err != syscall.EAGAIN {
		t.Fatalf("Read of an empty pipe = %d, %v; want 0, EAGAIN", n, err)
	}
	w.Write([]byte("abc"))
	if n, err := read(); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want 3, nil", n, err)
	}
	w.Close()
	if n, err := read(); n != 0 || err != nil {
		t.Fatalf("Read at EOF = %d, %v; want 0, nil", n, err)
	}
}

// Reads from several goroutines take turns: together they get every byte
// sent, once, and none fails or sees a false EOF. (net/http and crypto/tls
// never read concurrently; a net.Conn allows it.)
func TestConnConcurrentReadsTakeTurns(t *testing.T) {
	c, peer := pair(t)
	const readers = 4
	got := make(chan string, readers)
	for range readers {
		go func() {
			buf := make([]byte, 8)
			if _, err := io.ReadFull(c, buf); err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(buf)
		}()
	}
	sent := "aaaaaaaabbbbbbbbccccccccdddddddd"
	if _, err := peer.Write([]byte(sent)); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for range readers {
		s := <-got
		if strings.HasPrefix(s, "error") {
			t.Fatalf("a concurrent reader failed: %s", s)
		}
		all = append(all, s...)
	}
	slices.Sort(all)
	if string(all) != sent {
		t.Fatalf("the readers got %q together, not the bytes sent (%q)", all, sent)
	}
}

func TestConnZeroLengthCallsReportAClosedConn(t *testing.T) {
	c, _ := pair(t)
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) on an open conn = %d, %v", n, err)
	}
	c.Close()
	if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read(nil) after Close = %v; want net.ErrClosed", err)
	}
	if _, err := c.Write(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write(nil) after Close = %v; want net.ErrClosed", err)
	}
}
