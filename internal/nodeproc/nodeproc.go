// Package nodeproc starts a Nimbus node (nimbus dev, server or worker) as
// a child process and reads its banner: the one way the end-to-end tests
// and the benchmarks start the binary.
package nodeproc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// APILine is the banner line naming the API URL (dev, server).
	APILine = regexp.MustCompile(`API:\s+(https?://\S+)`)
	// RPCLine is the banner line naming a worker's RPC address.
	RPCLine = regexp.MustCompile(`RPC:\s+(\S+)`)
	// executorLine is nimbus dev's banner line naming its executor.
	executorLine = regexp.MustCompile(`Worker:\s+.*executor:\s+(.+)$`)
)

// Proc is a running node process.
type Proc struct {
	Cmd  *exec.Cmd
	Out  *Buffer       // what it printed, stdout and stderr
	Done chan struct{} // closed once it has exited
	// Addr is the first group of the line Start waited for.
	Addr string
}

// Start starts cmd (whose Stdout and Stderr must be unset) and waits up
// to timeout for a line matching ready, whose first group becomes Addr.
// The process is killed if this process dies without stopping it. On
// failure the process is stopped and its output is in the error.
func Start(cmd *exec.Cmd, ready *regexp.Regexp, timeout time.Duration) (*Proc, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, Out: &Buffer{}, Done: make(chan struct{})}
	cmd.Stderr = p.Out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Pdeathsig follows the thread that started the process.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.Out.Write(append(sc.Bytes(), '\n'))
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); close(p.Done) }()
	select {
	case p.Addr = <-addr:
		return p, nil
	case <-p.Done:
		return nil, fmt.Errorf("%s exited before serving:\n%s", filepath.Base(cmd.Path), p.Out.String())
	case <-time.After(timeout):
		p.Stop(10 * time.Second)
		return nil, fmt.Errorf("%s printed no line matching %q within %v:\n%s", filepath.Base(cmd.Path), ready, timeout, p.Out.String())
	}
}

// Stop interrupts the process as Ctrl-C does and waits for it to exit;
// after grace it asks for a goroutine dump (SIGQUIT) and then kills it,
// and reports an error.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.Done:
		return nil
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.Done:
		return nil
	case <-time.After(grace):
		// SIGQUIT makes the Go runtime print every goroutine's stack to
		// stderr (the output a failed test shows) and exit: where it hung.
		p.Cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.Done:
		case <-time.After(10 * time.Second):
			p.Cmd.Process.Kill()
			<-p.Done
		}
		return fmt.Errorf("%s did not stop within %v of SIGINT; stopped it with SIGQUIT (its goroutines are at the end of its output)", filepath.Base(p.Cmd.Path), grace)
	}
}

// Dev is a running `nimbus dev`.
type Dev struct {
	*Proc
	URL, Token, Data string
}

// StartDev starts `bin dev --data data --listen 127.0.0.1:0 extra...`
// and waits (up to a minute) for its API line and admin token.
func StartDev(bin, data string, extra ...string) (*Dev, error) {
	args := append([]string{"dev", "--data", data, "--listen", "127.0.0.1:0"}, extra...)
	p, err := Start(exec.Command(bin, args...), APILine, time.Minute)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		p.Stop(30 * time.Second)
		return nil, fmt.Errorf("nimbus dev's admin token: %w", err)
	}
	return &Dev{Proc: p, URL: p.Addr, Token: strings.TrimSpace(string(tok)), Data: data}, nil
}

// Executor returns the worker's executor as the banner named it, "" until
// the banner's Worker line (printed after its API line) is out.
func (d *Dev) Executor() string {
	for _, line := range strings.Split(d.Out.String(), "\n") {
		if m := executorLine.FindStringSubmatch(line); m != nil {
			return strings.TrimSpace(m[1])
		}
	}
	return ""
}

// Buffer is a bytes.Buffer that several goroutines may write.
//
// The buffer is a named field, not embedded: embedded, its ReadFrom would
// be promoted, and io.Copy (which exec uses to copy a process's output
// into a Writer) would call it without the lock, racing the other writer
// and losing lines.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
