package benchmark

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"nimbus/internal/nbio"
)

// pythonStart runs `python -I -S -c pass` once, with an empty environment
// and no output, and returns its start-to-exit time.
func pythonStart(exe string) (time.Duration, error) { return pythonRun(exe, "pass") }

// pythonRun times one bare interpreter (-I -S, no environment) running
// code.
func pythonRun(exe, code string) (time.Duration, error) {
	cmd := &exec.Cmd{Path: exe, Args: []string{exe, "-I", "-S", "-c", code}, Env: []string{}}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("benchmark: %s -I -S -c %q: %w: %s", exe, code, err, out)
	}
	return d, nil
}

// trivialHandler answers every request with the JSON null a no-op
// handler returns: the HTTP baseline's whole work.
var trivialHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("null"))
})

// newTrivialServer serves trivialHandler on loopback inside this process:
// the HTTP baseline as runs before 2026-11-23 measured it. A round trip
// to it may need no other process or thread to wake, which no server in
// a process of its own can offer its clients; the table still shows it,
// for comparison with those runs.
func newTrivialServer() *httptest.Server { return httptest.NewServer(trivialHandler) }

// httpBaselineEnv makes the nimbus binary the HTTP baseline's server
// (IsHTTPBaseline) instead of the CLI.
const httpBaselineEnv = "NIMBUS_BENCH_HTTP_BASELINE"

// IsHTTPBaseline reports whether this process was started as the HTTP
// baseline's server (the variable set, no arguments): then main calls
// HTTPBaselineMain and nothing else.
func IsHTTPBaseline() bool { return os.Getenv(httpBaselineEnv) == "1" && len(os.Args) == 1 }

// HTTPBaselineMain serves trivialHandler on a free loopback port, writes
// its URL and a newline to stdout, and exits when stdin ends (its parent
// closed it, or died). It never returns. It runs as a Nimbus node's API
// does, so that the two servers compared differ in their work alone: the
// Go scheduler gets half the CPUs, at least one, unless GOMAXPROCS is set
// (as a node's does while invocations come one at a time, as they do in
// the warm phase: internal/tuning/procs.go; on the 2-core machines measured
// here one processor also answers faster than two), and connections read and write
// through package nbio (without it, the runtime's monitor thread wakes on
// each request and polls for a while, beside the pipe round trip and the
// invoke measured next).
func HTTPBaselineMain() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nimbus bench: HTTP baseline:", err)
		os.Exit(1)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("http://%s\n", ln.Addr())
	err = (&http.Server{Handler: trivialHandler, ReadHeaderTimeout: time.Minute}).Serve(nbio.Listener{Listener: ln})
	fmt.Fprintln(os.Stderr, "nimbus bench: HTTP baseline:", err)
	os.Exit(1)
}

// httpBaseline is the HTTP baseline's server, running in a process of its
// own (exe started as IsHTTPBaseline), as every server a client reaches
// is: a round trip to it crosses to another process and back, as an
// invoke's HTTP leg does.
type httpBaseline struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

// baselineStartTimeout bounds the HTTP baseline's start.
const baselineStartTimeout = 30 * time.Second

func startHTTPBaseline(exe string) (*httpBaseline, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), httpBaselineEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchmark: starting the HTTP baseline: %w", err)
	}
	b := &httpBaseline{cmd: cmd, stdin: stdin}
	// A server that neither prints its address nor exits is killed, which
	// ends the read.
	stuck := time.AfterFunc(baselineStartTimeout, func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	stuck.Stop()
	if err != nil || !strings.HasPrefix(line, "http://") {
		b.close()
		return nil, fmt.Errorf("benchmark: the HTTP baseline did not start (%q, %v): %s", line, err, stderr.Bytes())
	}
	b.url = strings.TrimSpace(line)
	return b, nil
}

// close ends the server (EOF on its stdin) and waits for it.
func (b *httpBaseline) close() {
	b.stdin.Close()
	b.cmd.Wait()
}

// echoScript copies lines from stdin to stdout, flushing each: the bare
// pipe round trip an instance protocol cannot beat.
const echoScript = `import sys
r, w = sys.stdin.buffer, sys.stdout.buffer
for line in iter(r.readline, b""):
    w.write(line)
    w.flush()
`

// pipeEcho is a running Python echo loop. Not safe for concurrent use.
type pipeEcho struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startPipeEcho(exe string) (*pipeEcho, error) {
	cmd := &exec.Cmd{Path: exe, Args: []string{exe, "-I", "-S", "-u", "-c", echoScript}, Env: []string{}}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &pipeEcho{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// roundTrip writes one short line and reads it back.
func (p *pipeEcho) roundTrip() (time.Duration, error) {
	t0 := time.Now()
	if _, err := p.in.Write([]byte("{}\n")); err != nil {
		return 0, err
	}
	if _, err := p.out.ReadSlice('\n'); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// close ends the loop (EOF on its stdin) and waits for it.
func (p *pipeEcho) close() {
	p.in.Close()
	p.cmd.Wait()
}
