package benchmark

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"time"
)

// pythonStart runs `python -I -S -c pass` once, with an empty environment
// and no output, and returns its start-to-exit time.
func pythonStart(exe string) (time.Duration, error) {
	cmd := &exec.Cmd{Path: exe, Args: []string{exe, "-I", "-S", "-c", "pass"}, Env: []string{}}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("benchmark: %s -I -S -c pass: %w", exe, err)
	}
	return d, nil
}

// newTrivialServer is the HTTP baseline: a Go handler on loopback that
// answers every request with the JSON null a no-op handler returns.
func newTrivialServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("null"))
	}))
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
