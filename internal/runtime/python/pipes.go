package python

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// logPipe reads an instance's stdout/stderr for the instance's whole life
// (one goroutine, run) and cuts it into per-invocation logs at each
// sentinel the bootstrap writes. It holds at most limit bytes plus one read
// chunk whatever the child prints: past the limit it kills the instance
// (overflow) and discards the rest.
type logPipe struct {
	r          *os.File
	sentinel   []byte
	limit      int
	onOverflow func() // called once, without mu held, when the limit is passed
	// notify gets a token (coalesced) whenever the state below changes.
	notify chan struct{}

	mu       sync.Mutex
	cur      []byte // output since the last sentinel
	done     []byte // the log cut at the last sentinel, until taken
	complete bool   // done is valid
	overflow bool   // limit passed; cur holds the first limit bytes
	eof      bool   // every writer is gone
}

func newLogPipe(r *os.File, sentinel []byte, limit int, onOverflow func()) *logPipe {
	return &logPipe{r: r, sentinel: sentinel, limit: limit, onOverflow: onOverflow, notify: make(chan struct{}, 1)}
}

func (lp *logPipe) signal() {
	select {
	case lp.notify <- struct{}{}:
	default:
	}
}

// run reads until EOF or until r is closed.
func (lp *logPipe) run() {
	buf := make([]byte, 32<<10)
	for {
		n, err := lp.r.Read(buf)
		if n > 0 {
			lp.feed(buf[:n])
		}
		if err != nil {
			lp.mu.Lock()
			lp.eof = true
			lp.mu.Unlock()
			lp.signal()
			return
		}
	}
}

func (lp *logPipe) feed(chunk []byte) {
	lp.mu.Lock()
	if lp.overflow {
		lp.mu.Unlock()
		return
	}
	from := max(0, len(lp.cur)-len(lp.sentinel)+1)
	lp.cur = append(lp.cur, chunk...)
	changed := false
	if idx := bytes.Index(lp.cur[from:], lp.sentinel); idx >= 0 {
		idx += from
		if idx <= lp.limit {
			lp.done = lp.cur[:idx:idx]
			lp.complete = true
			lp.cur = append([]byte(nil), lp.cur[idx+len(lp.sentinel):]...)
			changed = true
		}
	}
	// A sentinel still to come starts at len(cur)-len(sentinel)+1 at the
	// earliest: past the limit, this invocation's log is over it.
	over := len(lp.cur)-len(lp.sentinel)+1 > lp.limit
	if over {
		lp.overflow = true
		lp.cur = lp.cur[:min(len(lp.cur), lp.limit)]
		changed = true
	}
	lp.mu.Unlock()
	if over {
		lp.onOverflow()
	}
	if changed {
		lp.signal()
	}
}

// take returns the completed log of the last invocation, if any.
func (lp *logPipe) take() ([]byte, bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if !lp.complete {
		return nil, false
	}
	d := lp.done
	lp.done, lp.complete = nil, false
	return d, true
}

// partial returns whatever was logged since the last taken log: the
// remains of an invocation that did not finish.
func (lp *logPipe) partial() []byte {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	out := append([]byte(nil), lp.done...)
	out = append(out, lp.cur...)
	lp.done, lp.complete, lp.cur = nil, false, nil
	return out
}

func (lp *logPipe) state() (overflow, eof bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.overflow, lp.eof
}

// frame is one frame from the bootstrap, or why none could be read.
type frame struct {
	body     []byte
	err      error // non-nil: the protocol is broken (EOF, garbage)
	tooLarge bool  // with err: a well-formed frame over the limit
}

var errBadFrame = errors.New("garbage on the response pipe")

// frameOverhead is the room a response frame gets beyond ResultLimit for
// its envelope.
const frameOverhead = 64 << 10

// readFrames reads frames from r until an error, delivering each on out
// unless stop is closed first. A length over limit is not read: a body that
// starts like JSON makes it tooLarge, anything else garbage.
func readFrames(r io.Reader, limit int, out chan<- frame, stop <-chan struct{}) {
	var hdr [4]byte
	for {
		f := readFrame(r, hdr[:], limit)
		select {
		case out <- f:
		case <-stop:
			return
		}
		if f.err != nil {
			return
		}
	}
}

func readFrame(r io.Reader, hdr []byte, limit int) frame {
	if _, err := io.ReadFull(r, hdr); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errBadFrame
		}
		return frame{err: err}
	}
	n := binary.BigEndian.Uint32(hdr)
	if uint64(n) > uint64(limit) {
		var first [1]byte
		if _, err := io.ReadFull(r, first[:]); err != nil || first[0] != '{' {
			return frame{err: errBadFrame}
		}
		return frame{err: fmt.Errorf("response frame of %d bytes over the limit of %d", n, limit), tooLarge: true}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return frame{err: errBadFrame}
	}
	return frame{body: body}
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
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, `{"request_id":`...)
	q, _ := json.Marshal(id)
	dst = append(dst, q...)
	dst = append(dst, `,"deadline_ms":`...)
	dst = strconv.AppendInt(dst, deadlineMS, 10)
	dst = append(dst, `,"payload":`...)
	switch {
	case len(bytes.TrimSpace(payload)) == 0:
		dst = append(dst, `{}`...)
	case json.Valid(payload):
		dst = append(dst, payload...)
	default:
		s, _ := json.Marshal(string(payload))
		dst = append(dst, s...)
	}
	dst = append(dst, '}')
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// envelope is a frame from the bootstrap: a ready frame or a response.
type envelope struct {
	Ready     *bool           `json:"ready"`
	OK        bool            `json:"ok"`
	RequestID string          `json:"request_id"`
	Result    json.RawMessage `json:"result"`
	Error     json.RawMessage `json:"error"`
	MaxRSSKB  int64           `json:"max_rss_kb"`
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

// errorJSON renders a platform error document.
func errorJSON(errType, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, errType})
	return b
}
