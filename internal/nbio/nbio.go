// Package nbio reads and writes non-blocking descriptors (TCP
// connections, pipes) with raw system calls, parking in Go's network
// poller when a call would block, as the net and os packages do.
//
// What it saves is the runtime's blocking-syscall bookkeeping. Go wraps
// every read(2) and write(2) of the os and net packages in entersyscall,
// so that a call that blocks can hand its processor to another thread.
// When the program was idle, the background monitor thread (sysmon) is in
// a deep sleep, and the first such call wakes it: a futex wake of another
// thread, on a virtual machine an idle CPU's wake-up too, then the
// monitor polling every 20 µs until the program is idle again. A server
// that answers one request at a time pays all of that on every request,
// in its critical path and on the CPU its function's process is about to
// run on. A read or write of a non-blocking descriptor never blocks, so
// the bookkeeping buys nothing there: nbio makes those calls raw.
//
// Only descriptors in non-blocking mode may be used this way (a raw call
// that blocks would hold its processor): sockets from net always are, and
// NewWriter accepts only files that Go's poller manages (os.Pipe's are).
package nbio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// op is a call in progress: its buffer and outcome (see direction).
type op struct {
	buf   []byte
	n     int
	errno syscall.Errno
}

// read is a RawConn.Read step: one read(2), retried on EINTR; false
// (wait until readable) on EAGAIN.
func (o *op) read(fd uintptr) bool {
	for {
		r, e := rawRead(fd, o.buf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			o.n = int(r)
		}
		o.errno = e
		return true
	}
}

// write is a RawConn.Write step: write(2) until the buffer is written or
// an error; false (wait until writable) on EAGAIN, keeping what was
// written.
func (o *op) write(fd uintptr) bool {
	for o.n < len(o.buf) {
		r, e := rawWrite(fd, o.buf[o.n:])
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			o.n += int(r)
			continue
		}
		o.errno = e
		return true
	}
	return true
}

// direction is one direction of a descriptor: its calls take turns
// (mu), each running its step under the poller's wait (a RawConn's Read
// or Write), both bound once so that a call allocates nothing.
type direction struct {
	mu   sync.Mutex // held across a call: o is its
	o    op
	step func(fd uintptr) bool
	wait func(func(fd uintptr) bool) error
}

// newDirection returns the reading direction (wait is a RawConn's Read)
// or the writing one (its Write).
func newDirection(writes bool, wait func(func(uintptr) bool) error) *direction {
	d := &direction{wait: wait}
	d.step = d.o.read
	if writes {
		d.step = d.o.write
	}
	return d
}

// call runs one read or write of p and returns what it did: the bytes
// moved, the system call's error and the poller's (closed, deadline).
func (d *direction) call(p []byte) (int, syscall.Errno, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.o = op{buf: p}
	err := d.wait(d.step)
	n, errno := d.o.n, d.o.errno
	d.o = op{}
	return n, errno, err
}

// Conn is a TCP connection whose Read and Write are raw system calls.
// Everything else (deadlines, Close, CloseWrite, addresses) is the
// *net.TCPConn's, and Read and Write honour its deadlines. Like any
// net.Conn it may be used from several goroutines: Reads take turns, and
// so do Writes.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w *direction
}

// NewConn wraps c.
func NewConn(c *net.TCPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Conn{TCPConn: c, rc: rc, r: newDirection(false, rc.Read), w: newDirection(true, rc.Write)}, nil
}

// Read reads what the connection has, waiting (until the read deadline)
// for at least one byte; io.EOF once the peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, c.opError("read", usable(c.rc))
	}
	n, errno, err := c.r.call(p)
	switch {
	case err != nil:
		return 0, c.opError("read", unwrapRaw(err))
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting (until the write deadline) while the
// socket's buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, c.opError("write", usable(c.rc))
	}
	n, errno, err := c.w.call(p)
	switch {
	case err != nil:
		return n, c.opError("write", unwrapRaw(err))
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// opError is err as net reports a failed Read or Write; nil for nil.
func (c *Conn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// usable is what a zero-length Read or Write returns: nil, or why the
// descriptor cannot be used (closed).
func usable(rc syscall.RawConn) error { return unwrapRaw(rc.Control(noControl)) }

func noControl(uintptr) {}

// unwrapRaw strips the "raw-read"/"raw-write" *net.OpError that a
// RawConn puts around a poller error (closed, deadline exceeded).
func unwrapRaw(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// Listener wraps a listener so that its TCP connections are *Conn.
type Listener struct{ net.Listener }

// Accept waits for the next connection.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	nc, err := NewConn(tc)
	if err != nil {
		return c, nil // no raw access: the connection as it is
	}
	return nc, nil
}

// Writer writes to a file that Go's poller manages (a pipe from os.Pipe)
// with raw system calls. Concurrent Writes take turns.
type Writer struct {
	f *os.File
	w *direction
}

// NewWriter returns a Writer for f, or an error if f is not in
// non-blocking mode under the poller (a regular file, a terminal).
func NewWriter(f *os.File) (*Writer, error) {
	// Only a file the poller manages accepts a deadline.
	if err := f.SetWriteDeadline(time.Time{}); err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Writer{f: f, w: newDirection(true, rc.Write)}, nil
}

// Write writes all of p, waiting (until f's write deadline) while the
// pipe is full. Its errors are those of (*os.File).Write.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := w.w.call(p)
	switch {
	case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
		// The poller's other refusal, for a file NewWriter accepted, is
		// that it is closed: said as (*os.File).Write says it.
		return n, &os.PathError{Op: "write", Path: w.f.Name(), Err: os.ErrClosed}
	case err != nil:
		return n, &os.PathError{Op: "write", Path: w.f.Name(), Err: err}
	case errno != 0:
		return n, &os.PathError{Op: "write", Path: w.f.Name(), Err: errno}
	}
	return n, nil
}

// Read is one raw read(2) of the non-blocking descriptor fd, retried on
// EINTR; syscall.EAGAIN when it has nothing yet. It never parks: it is
// for callers that poll (inside RawConn.Control, which keeps fd open).
func Read(fd uintptr, p []byte) (int, error) {
	o := op{buf: p}
	if !o.read(fd) {
		return 0, syscall.EAGAIN
	}
	if o.errno != 0 {
		return 0, o.errno
	}
	return o.n, nil
}
