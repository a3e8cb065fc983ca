package provided

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"nimbus/internal/nbio"
)

// resultLimit bounds a result or error document, as the worker does
// (python.DefaultResultLimit).
const resultLimit = 6 << 20

// Main runs this process as a provided instance's Runtime API server on
// fds 3 (frames in) and 4 (frames out), and exits with its status. It
// never returns.
func Main() {
	// The server waits on one bootstrap: it needs no parallelism, and
	// every thread counts against the sandbox's pids limit.
	runtime.GOMAXPROCS(1)
	os.Exit(Serve(framePipe(3, "requests"), framePipe(4, "responses"), os.Stderr, Config{}))
}

// Config adjusts Serve; the zero value is what a sandbox uses.
type Config struct {
	Addr      string // where to listen; "" for Addr (falling back to a free port)
	Bootstrap string // the program to run; "" for bootstrap in the code directory
}

// initFrame is the worker's init frame (see python's handshake): the
// fields the server uses.
type initFrame struct {
	Handler string            `json:"handler"`
	ARN     string            `json:"arn"`
	Env     map[string]string `json:"env"`   // a pre-started instance's complete environment
	Chdir   string            `json:"chdir"` // and where its code is
}

// Serve runs the instance protocol on in and out: the init frame, then
// the bootstrap's start, the ready frame, and one response frame per
// invoke frame, until in ends (0), or the bootstrap exits while
// idle or during an invocation (its exit status, 128+signal for a
// signal). logw is the instance's log (the server's own lines: what
// failed, as the Python bootstrap logs a failed import).
func Serve(in io.Reader, out io.Writer, logw io.Writer, cfg Config) int {
	fail := func(err error) int {
		fmt.Fprintf(logw, "nimbus runtime-api: %v\n", err)
		return 70
	}
	rd := bufio.NewReader(in)
	// A pre-started instance of a dependency set is asked to import its
	// layers' Python modules ahead: it has none to import.
	if os.Getenv("NIMBUS_PRELOAD") != "" {
		os.Unsetenv("NIMBUS_PRELOAD")
		os.Unsetenv("NIMBUS_PRELOAD_PATH")
		if err := writeFrame(out, []byte(`{"preloaded":true}`)); err != nil {
			return fail(err)
		}
	}
	body, err := readFrame(rd)
	if errors.Is(err, io.EOF) {
		return 0
	}
	if err != nil {
		return fail(fmt.Errorf("init frame: %w", err))
	}
	var ini initFrame
	if err := json.Unmarshal(body, &ini); err != nil {
		return fail(fmt.Errorf("init frame: %w", err))
	}
	env := os.Environ()
	if ini.Env != nil {
		env = env[:0]
		for k, v := range ini.Env {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
	}
	if ini.Chdir != "" {
		if err := os.Chdir(ini.Chdir); err != nil {
			return fail(err)
		}
	}
	ln, err := listen(cfg.Addr)
	if err != nil {
		return fail(err)
	}
	api := NewAPI(ini.ARN, resultLimit)
	go api.Serve(nbio.Listener{Listener: ln}) // raw reads and writes: see framePipe
	defer ln.Close()

	env = append(env, "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "LAMBDA_RUNTIME_DIR=/var/runtime")
	prog := cfg.Bootstrap
	if prog == "" {
		wd, _ := os.Getwd()
		prog = filepath.Join(wd, "bootstrap")
	}
	child, err := startChild(prog, env)
	if err != nil {
		// Not started: the instance lives on and answers every
		// invocation with why (as a handler that does not import).
		doc := errorJSON(ErrTypeInvalidEntrypoint, fmt.Sprintf("Couldn't start the bootstrap %s: %v", prog, err))
		return serveFailed(rd, out, logw, doc)
	}
	defer child.kill()
	defer child.closeStatus()

	select {
	case <-api.Ready():
		if err := writeFrame(out, []byte(`{"ready":true}`)); err != nil {
			return fail(err)
		}
	case doc := <-api.InitErrors():
		child.kill()
		<-child.done // gone before the ready frame: no process is left over
		return serveFailed(rd, out, logw, doc)
	case <-child.done:
		doc := errorJSON(ErrTypeExit, "Runtime exited with error: "+child.describe())
		return serveFailed(rd, out, logw, doc)
	}

	// The frames are read on a goroutine of their own, so that the loop
	// also hears of the bootstrap's end while idle, one at a time: the
	// next read (a read(2) that would block, then parking) waits until
	// the invocation's response frame is out, instead of running between
	// the invoke frame and its hand-over to the bootstrap.
	frames := make(chan []byte)
	resume := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			b, err := readFrame(rd)
			if err != nil {
				readErr <- err
				return
			}
			frames <- b
			<-resume
		}
	}()
	// The response frame is written by the request that ends the
	// invocation (OnOutcome), before it is answered; the loop writes one
	// only for an invocation it takes back from a dead bootstrap.
	var buf []byte
	var writeErr error
	api.OnOutcome(func(o Outcome) {
		kind := byte(kindOK)
		if !o.OK {
			kind = kindError
		}
		buf = appendResponse(buf[:0], kind, child.maxRSSKB(), o.RequestID, o.Body)
		_, writeErr = out.Write(buf)
	})
	for {
		var f []byte
		select {
		case f = <-frames:
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return 0 // the worker closed the instance
			}
			return fail(err)
		case <-child.done:
			return child.status() // died while idle: the instance is dead
		}
		inv, ok := parseInvoke(f)
		if !ok {
			return fail(errors.New("not an invoke frame"))
		}
		api.Invoke(inv)
		select {
		case <-api.Outcomes():
			if writeErr != nil {
				return fail(writeErr)
			}
			resume <- struct{}{}
		case <-child.done:
			if !api.Abandon(inv.RequestID) {
				<-api.Outcomes() // its frame is out: the bootstrap died after it
				return child.status()
			}
			if child.signaled() {
				// Killed (the memory limit's OOM kill among others): the
				// worker tells why from the sandbox, as for any crash.
				return child.status()
			}
			doc := errorJSON(ErrTypeExit, "Runtime exited with error: "+child.describe())
			buf = appendResponse(buf[:0], kindError, child.maxRSSKB(), inv.RequestID, doc)
			out.Write(buf)
			return child.status()
		}
	}
}

// serveFailed answers every invoke frame with doc, the error of an init
// that failed, as the Python bootstrap answers with a failed import:
// logged at init (the first invocation's log) and with each invocation.
func serveFailed(rd *bufio.Reader, out io.Writer, logw io.Writer, doc []byte) int {
	logError(logw, doc)
	ready, _ := json.Marshal(map[string]any{"ready": false, "error": json.RawMessage(doc)})
	if err := writeFrame(out, ready); err != nil {
		return 70
	}
	var buf []byte
	for {
		f, err := readFrame(rd)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			return 70
		}
		inv, ok := parseInvoke(f)
		if !ok {
			return 70
		}
		logError(logw, doc)
		buf = appendResponse(buf[:0], kindError, ownMaxRSSKB(), inv.RequestID, doc)
		if _, err := out.Write(buf); err != nil {
			return 70
		}
	}
}

// logError writes an error document's line to the log, as the Python
// bootstrap does: [ERROR] type: message.
func logError(logw io.Writer, doc []byte) {
	var e struct{ ErrorType, ErrorMessage string }
	json.Unmarshal(doc, &e)
	fmt.Fprintf(logw, "[ERROR] %s: %s\n", e.ErrorType, e.ErrorMessage)
}

// listen listens on addr, or on Addr and else a free loopback port.
func listen(addr string) (net.Listener, error) {
	if addr != "" {
		return net.Listen("tcp", addr)
	}
	if ln, err := net.Listen("tcp", Addr); err == nil {
		return ln, nil
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// child is the bootstrap process. The server reaps every process that
// ends below it (as the sandbox's pid 1, it inherits orphans), and
// notes the bootstrap's end.
type child struct {
	pid  int
	done chan struct{} // closed when the bootstrap has exited; ws is set then
	ws   syscall.WaitStatus
	// statusFD is /proc/<pid>/status, opened at the first maxRSSKB (-1
	// before; -2 if it cannot be), and buf what it is read into.
	statusFD int
	buf      []byte
}

// startChild starts prog with env, stdin, stdout and stderr the
// server's own (the log), nothing else inherited.
func startChild(prog string, env []string) (*child, error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	wd, _ := os.Getwd()
	pid, err := syscall.ForkExec(prog, []string{prog}, &syscall.ProcAttr{
		Dir:   wd,
		Env:   env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		signal.Stop(sig)
		return nil, err
	}
	c := &child{pid: pid, done: make(chan struct{}), statusFD: -1}
	go c.reap(sig)
	return c, nil
}

// reap waits for exited processes on each SIGCHLD until the bootstrap
// is among them.
func (c *child) reap(sig chan os.Signal) {
	defer close(c.done)
	for {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil && !errors.Is(err, syscall.EINTR) {
				if errors.Is(err, syscall.ECHILD) {
					return // not ours any more: cannot tell how it ended
				}
				break
			}
			if pid <= 0 {
				break
			}
			if pid == c.pid {
				c.ws = ws
				return
			}
		}
		<-sig
	}
}

func (c *child) kill() { syscall.Kill(c.pid, syscall.SIGKILL) }

// signaled reports whether the bootstrap was killed by a signal.
func (c *child) signaled() bool { return c.ws.Signaled() }

// status is the server's exit status for the bootstrap's end.
func (c *child) status() int {
	if c.ws.Signaled() {
		return 128 + int(c.ws.Signal())
	}
	if c.ws.ExitStatus() == 0 {
		return 1 // the server must not look like a clean shutdown
	}
	return c.ws.ExitStatus()
}

// describe says how the bootstrap ended, as Lambda does.
func (c *child) describe() string {
	if c.ws.Signaled() {
		return "signal: " + c.ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(c.ws.ExitStatus())
}

// maxRSSKB is the bootstrap's peak resident memory (VmHWM), 0 if it
// cannot be read. It is read before every response frame, in the
// invocation's critical path: the file stays open, and each read is one
// pread(2) from its start (the kernel renders it anew) into a buffer
// kept for it, as a raw system call (see framePipe; procfs does not
// block). Not safe for concurrent use.
func (c *child) maxRSSKB() int64 {
	if c.statusFD == -1 {
		fd, err := syscall.Open("/proc/"+strconv.Itoa(c.pid)+"/status", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			c.statusFD = -2
			return 0
		}
		c.statusFD, c.buf = fd, make([]byte, 8<<10)
	}
	if c.statusFD < 0 {
		return 0
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_PREAD64, uintptr(c.statusFD), uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return parseHWM(c.buf[:n])
}

// closeStatus closes what maxRSSKB opened.
func (c *child) closeStatus() {
	if c.statusFD >= 0 {
		syscall.Close(c.statusFD)
	}
	c.statusFD = -2
}

// parseHWM returns the kB of the VmHWM line of a /proc/<pid>/status, 0
// if it has none.
func parseHWM(status []byte) int64 {
	_, v, ok := bytes.Cut(status, []byte("\nVmHWM:"))
	if !ok {
		return 0
	}
	v, _, _ = bytes.Cut(v, []byte("\n"))
	n, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
	return n
}

// ownMaxRSSKB is the server's own peak resident memory: what the
// instance holds once its bootstrap is gone.
func ownMaxRSSKB() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss
}

// framePipe is the inherited pipe fd (the worker's frames in, or the
// server's out) set non-blocking and read or written with raw system
// calls (package nbio), parking in Go's poller meanwhile; the file as it
// is if that cannot be done. Every ordinary read(2) or write(2) wakes the
// runtime's monitor thread, which then polls every 20 us for a while:
// on each invocation, in its critical path, on the CPU the bootstrap is
// about to run on. With the HTTP connections (nbio.Listener) and
// maxRSSKB also raw, an invocation makes no such call.
func framePipe(fd int, name string) io.ReadWriter {
	if syscall.SetNonblock(fd, true) != nil {
		return os.NewFile(uintptr(fd), name)
	}
	f := os.NewFile(uintptr(fd), name) // non-blocking: the poller's
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	w, err := nbio.NewWriter(f)
	if err != nil {
		return f
	}
	return &rawPipe{Writer: w, rc: rc}
}

// rawPipe reads a non-blocking pipe with nbio.Read under its RawConn, and
// writes it through an nbio.Writer. Reads must not be concurrent.
type rawPipe struct {
	*nbio.Writer
	rc   syscall.RawConn
	buf  []byte // the current Read's
	n    int
	err  error
	step func(fd uintptr) bool
}

func (p *rawPipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.step == nil {
		p.step = func(fd uintptr) bool {
			n, err := nbio.Read(fd, p.buf)
			if err == syscall.EAGAIN {
				return false
			}
			p.n, p.err = n, err
			return true
		}
	}
	p.buf = b
	err := p.rc.Read(p.step)
	n, rerr := p.n, p.err
	p.buf, p.n, p.err = nil, 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Frames (internal/runtime/python's pipes.go): a 4-byte big-endian
// length, then the body.
//
//	invoke   'I' | deadline ms (8) | id length (2) | id | event JSON
//	response 'O' or 'E' | max RSS kB (8) | id length (2) | id | result or error JSON
const (
	kindInvoke = 'I'
	kindOK     = 'O'
	kindError  = 'E'
	// maxFrame bounds a frame in: an event is at most what the gateway
	// takes, well under this.
	maxFrame = 64 << 20
)

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("frame cut short")
		}
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errors.New("frame cut short")
	}
	return b, nil
}

func writeFrame(w io.Writer, body []byte) error {
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	if err == nil {
		_, err = w.Write(body)
	}
	return err
}

// parseInvoke decodes an invoke frame.
func parseInvoke(b []byte) (Invocation, bool) {
	if len(b) < 11 || b[0] != kindInvoke {
		return Invocation{}, false
	}
	n := int(binary.BigEndian.Uint16(b[9:11]))
	if len(b) < 11+n {
		return Invocation{}, false
	}
	return Invocation{
		RequestID: string(b[11 : 11+n]),
		Deadline:  time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9]))),
		Event:     b[11+n:], // b is the invocation's own
		TraceID:   traceID(),
	}, true
}

// appendResponse appends a response frame.
func appendResponse(dst []byte, kind byte, maxRSSKB int64, id string, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+8+2+len(id)+len(body)))
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxRSSKB))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	return append(dst, body...)
}

// traceID makes an X-Ray-shaped trace header for one invocation (Nimbus
// traces nothing: the value is for runtimes that expect one).
func traceID() string {
	var r [12]byte
	rand.Read(r[:])
	return fmt.Sprintf("Root=1-%08x-%s;Sampled=0", time.Now().Unix(), hex.EncodeToString(r[:]))
}
