package python

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"nimbus/internal/nbio"
)

// logPipe reads an instance's stdout/stderr for the instance's whole life
// (one goroutine, run), so that a handler printing more than a pipe holds
// never blocks, and cuts it into per-invocation logs. It holds at most
// limit bytes plus one read chunk whatever the child prints: past the
// limit it kills the instance (overflow) and discards the rest.
//
// The cut needs no marker in the stream: the bootstrap flushes stdout and
// stderr before it sends a frame, so once the worker holds the frame,
// everything the invocation wrote is in the pipe or already read. drain
// reads the pipe empty, without waiting, and cut takes the log. A read and
// the feeding of what it read happen under readMu, by run or by drain, so
// chunks are fed in the order they were read.
type logPipe struct {
	r          *os.File
	limit      int
	onOverflow func() // called once, without mu held, when the limit is passed
	// notify gets a token (coalesced) whenever the state below changes.
	notify chan struct{}

	readMu  sync.Mutex // held across one read and its feed
	rc      syscall.RawConn
	fd      int    // r's descriptor if non-blocking, for drain; else -1
	closed  bool   // r is being closed: drain must not touch fd
	buf     []byte // read buffer, used under readMu
	rawRead func(fd uintptr) bool
	readN   int
	readErr error

	mu       sync.Mutex
	cur      []byte // output since the last cut
	overflow bool   // limit passed; cur holds the first limit bytes
	eof      bool   // every writer is gone
}

// newLogPipe returns a logPipe over r (nil in tests that only feed it).
func newLogPipe(r *os.File, limit int, onOverflow func()) *logPipe {
	lp := &logPipe{r: r, limit: limit, onOverflow: onOverflow, notify: make(chan struct{}, 1), fd: -1,
		buf: make([]byte, 32<<10)}
	lp.rawRead = lp.readOnce
	if r == nil {
		return lp
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return lp
	}
	lp.rc = rc
	rc.Control(func(fd uintptr) {
		// drain must never block: it reads only a non-blocking pipe (as
		// os.Pipe makes it); otherwise logs wait for run.
		if flags, err := fcntl(fd, syscall.F_GETFL, 0); err == nil && flags&syscall.O_NONBLOCK != 0 {
			lp.fd = int(fd)
		}
	})
	return lp
}

func (lp *logPipe) signal() {
	select {
	case lp.notify <- struct{}{}:
	default:
	}
}

// readOnce is run's raw read: one non-blocking read and its feed under
// readMu. It reports false (wait for more) when there is nothing to read.
func (lp *logPipe) readOnce(fd uintptr) bool {
	lp.readMu.Lock()
	n, err := nbio.Read(fd, lp.buf)
	if err == syscall.EAGAIN {
		lp.readMu.Unlock()
		return false
	}
	if n > 0 {
		lp.feed(lp.buf[:n])
	}
	lp.readMu.Unlock()
	lp.readN, lp.readErr = n, err
	return true
}

// run reads until EOF or until r is closed.
func (lp *logPipe) run() {
	err := errors.New("not a pipe")
	if lp.rc != nil {
		err = nil
	}
	for err == nil {
		err = lp.rc.Read(lp.rawRead)
		if err == nil && lp.readErr != nil {
			err = lp.readErr
		}
		if err == nil && lp.readN == 0 {
			err = io.EOF
		}
	}
	lp.mu.Lock()
	lp.eof = true
	lp.mu.Unlock()
	lp.signal()
}

// drain reads and feeds whatever the pipe holds now, without waiting.
func (lp *logPipe) drain() {
	lp.readMu.Lock()
	defer lp.readMu.Unlock()
	if lp.closed || lp.fd < 0 {
		return
	}
	for {
		n, err := nbio.Read(uintptr(lp.fd), lp.buf)
		if n > 0 {
			lp.feed(lp.buf[:n])
		}
		if err != nil || n < len(lp.buf) {
			return // EAGAIN: empty for now; EOF and errors are run's to see
		}
	}
}

// close closes the pipe; drain no longer reads from it.
func (lp *logPipe) close() {
	lp.readMu.Lock()
	lp.closed = true
	lp.readMu.Unlock()
	lp.r.Close()
}

func fcntl(fd uintptr, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (lp *logPipe) feed(chunk []byte) {
	lp.mu.Lock()
	if lp.overflow {
		lp.mu.Unlock()
		return
	}
	lp.cur = append(lp.cur, chunk...)
	over := len(lp.cur) > lp.limit
	if over {
		lp.overflow = true
		lp.cur = lp.cur[:lp.limit]
	}
	lp.mu.Unlock()
	if over {
		lp.onOverflow()
		lp.signal()
	}
}

// cut returns what was logged since the last cut: after drain, the whole
// log of an invocation whose frame has arrived (or the remains of one that
// did not finish).
func (lp *logPipe) cut() []byte {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	out := lp.cur
	lp.cur = nil
	return out
}

func (lp *logPipe) state() (overflow, eof bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.overflow, lp.eof
}

// Frames (docs/architecture.md, "Instance protocol"): a 4-byte big-endian
// length, then the body. The init frame (worker to bootstrap) and the
// ready frame (back) are JSON documents, sent once. The frames of an
// invocation are binary, so that neither side parses more than the event
// and the result themselves:
//
//	invoke   'I' | deadline ms (8) | id length (2) | id | event JSON
//	response 'O' or 'E' | max RSS kB (8) | id length (2) | id | result or error JSON
//
// All integers are big-endian.
const (
	kindInvoke = 'I'
	kindOK     = 'O' // the body is the result
	kindError  = 'E' // the body is the error document
	kindChunk  = 'C' // a streamed result's chunk: id length (2) | id | data
	kindAck    = 'A' // the worker passed the chunk on: send the next
	// respHeader is the fixed part of a response body: kind, max RSS, id length.
	respHeader = 1 + 8 + 2
)

// frame is one frame from the bootstrap, or why none could be read.
type frame struct {
	body     []byte
	shared   bool  // body lies in the reader's scratch buffer: copy what is kept
	err      error // non-nil: no frame (EOF, garbage, or the read was interrupted)
	tooLarge bool  // with err: a well-formed response frame over the limit
}

var errBadFrame = errors.New("garbage on the response pipe")

// frameOverhead is the room a response frame gets beyond ResultLimit for
// its header.
const frameOverhead = 64 << 10

// readFrame reads one frame from r, reading ahead into scratch (so that a
// small frame costs one read). A length over limit is not read: a body
// that starts like a response makes it tooLarge, anything else garbage, as
// is anything after the frame (the bootstrap sends one frame at a time).
// Errors other than EOF (an interrupted read) are returned as they are.
func readFrame(r io.Reader, scratch []byte, limit int) frame {
	have, err := io.ReadAtLeast(r, scratch, 4)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errBadFrame
		}
		return frame{err: err}
	}
	n := int(binary.BigEndian.Uint32(scratch))
	if uint64(n) > uint64(limit) {
		if have == 4 {
			if _, err := io.ReadFull(r, scratch[4:5]); err != nil {
				return frame{err: errBadFrame}
			}
		}
		if k := scratch[4]; k != kindOK && k != kindError && k != kindChunk {
			return frame{err: errBadFrame}
		}
		return frame{err: fmt.Errorf("response frame of %d bytes over the limit of %d", n, limit), tooLarge: true}
	}
	if have > 4+n {
		return frame{err: errBadFrame}
	}
	if 4+n <= len(scratch) {
		if have < 4+n {
			if _, err := io.ReadFull(r, scratch[have:4+n]); err != nil {
				return frame{err: frameErr(err)}
			}
		}
		return frame{body: scratch[4 : 4+n], shared: true}
	}
	body := make([]byte, n)
	copy(body, scratch[4:have])
	if _, err := io.ReadFull(r, body[have-4:]); err != nil {
		return frame{err: frameErr(err)}
	}
	return frame{body: body}
}

// frameErr is the error of a frame cut short: garbage, unless the read was
// interrupted.
func frameErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errBadFrame
	}
	return err
}

// appendFrame appends v as a frame: length prefix, then v.
func appendFrame(dst, v []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
	return append(dst, v...)
}

// appendRequest appends the invoke frame for one request. A payload that
// is not valid JSON is sent as a JSON string; an empty one as {}.
func appendRequest(dst []byte, id string, payload []byte, deadlineMS int64) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, kindInvoke)
	dst = binary.BigEndian.AppendUint64(dst, uint64(deadlineMS))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	switch {
	case len(bytes.TrimSpace(payload)) == 0:
		dst = append(dst, `{}`...)
	case json.Valid(payload):
		dst = append(dst, payload...)
	default:
		s, _ := json.Marshal(string(payload))
		dst = append(dst, s...)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// response is a decoded response frame. body aliases the frame.
type response struct {
	ok       bool
	maxRSSKB int64
	id       []byte
	body     []byte
}

// parseResponse decodes a response frame body.
func parseResponse(b []byte) (response, bool) {
	if len(b) < respHeader || (b[0] != kindOK && b[0] != kindError) {
		return response{}, false
	}
	idLen := int(binary.BigEndian.Uint16(b[9:11]))
	if len(b) < respHeader+idLen {
		return response{}, false
	}
	return response{
		ok:       b[0] == kindOK,
		maxRSSKB: int64(binary.BigEndian.Uint64(b[1:9])),
		id:       b[respHeader : respHeader+idLen],
		body:     b[respHeader+idLen:],
	}, true
}

// parseChunk decodes a chunk frame: the request id and the data, both
// aliasing b.
func parseChunk(b []byte) (id, data []byte, ok bool) {
	if len(b) < 3 || b[0] != kindChunk {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if len(b) < 3+n {
		return nil, nil, false
	}
	return b[3 : 3+n], b[3+n:], true
}

// ackFrame acknowledges a chunk.
var ackFrame = []byte{0, 0, 0, 1, kindAck}

// readyFrame is the bootstrap's answer to the init frame.
type readyFrame struct {
	Ready *bool           `json:"ready"`
	Error json.RawMessage `json:"error"`
}

// errorType extracts errorType from an error document.
func errorType(errJSON []byte) string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(errJSON, &e) != nil || e.ErrorType == "" {
		return "Unhandled"
	}
	return e.ErrorType
}

// ErrorJSON renders a platform error document, in Lambda's shape
// ({"errorMessage", "errorType"}).
func ErrorJSON(errType, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, errType})
	return b
}
