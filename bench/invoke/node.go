package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

// devNode is a `nimbus dev` this benchmark started, with its own data
// directory. stop ends it and removes what it made.
type devNode struct {
	url, token string
	executor   string // the worker's executor, from the banner
	tmp        string // holds the binary (when built) and the data directory
	cmd        *exec.Cmd
	done       chan struct{}
	out        *lockedBuffer // everything the node printed
}

var (
	apiLine    = regexp.MustCompile(`API:\s+(http://\S+)`)
	workerLine = regexp.MustCompile(`Worker:\s+.*executor:\s+(.+)$`)
)

// startDev builds nimbus (unless bin names a binary) and starts
// `nimbus dev --data <tmp> --listen 127.0.0.1:0`, waiting for its banner.
func startDev(ctx context.Context, bin string) (*devNode, error) {
	tmp, err := os.MkdirTemp("", "nimbus-bench-invoke")
	if err != nil {
		return nil, err
	}
	n := &devNode{tmp: tmp, done: make(chan struct{}), out: &lockedBuffer{}}
	if bin == "" {
		bin = filepath.Join(tmp, "nimbus")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "nimbus/cmd/nimbus")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("build nimbus: %w", err)
		}
	}
	data := filepath.Join(tmp, "data")
	n.cmd = exec.Command(bin, "dev", "--data", data, "--listen", "127.0.0.1:0")
	n.cmd.Stderr = n.out
	// If this process dies without stopping the node, the node goes too.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	runtime.LockOSThread()
	err = n.cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			n.out.Write([]byte(line + "\n"))
			if m := apiLine.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
			if m := workerLine.FindStringSubmatch(line); m != nil {
				n.out.mu.Lock()
				n.executor = strings.TrimSpace(m[1])
				n.out.mu.Unlock()
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { n.cmd.Wait(); close(n.done) }()
	select {
	case n.url = <-urlc:
	case <-n.done:
		n.stop()
		return nil, fmt.Errorf("nimbus dev exited before serving:\n%s", n.out.String())
	case <-time.After(60 * time.Second):
		n.stop()
		return nil, fmt.Errorf("nimbus dev printed no API line within 60s:\n%s", n.out.String())
	case <-ctx.Done():
		n.stop()
		return nil, ctx.Err()
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		n.stop()
		return nil, err
	}
	n.token = strings.TrimSpace(string(tok))
	return n, nil
}

// Executor returns the worker's executor as the banner named it.
func (n *devNode) Executor() string {
	n.out.mu.Lock()
	defer n.out.mu.Unlock()
	return n.executor
}

// stop interrupts the node as Ctrl-C does, kills it if it has not exited
// within 30 seconds, and removes its data.
func (n *devNode) stop() error {
	var err error
	n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		err = fmt.Errorf("nimbus dev did not stop within 30s of SIGINT; killed it")
	}
	os.RemoveAll(n.tmp)
	// The sandbox names each instance's cgroup i<worker pid>-<n>; report
	// (without touching them) those the node left when it exited.
	// Best effort: this looks only where a root-cgroup worker keeps them.
	left, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/nimbus/i%d-*", n.cmd.Process.Pid))
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "invoke: warning: nimbus dev left %d instance cgroups behind, e.g. %s\n", len(left), left[0])
	}
	return err
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
