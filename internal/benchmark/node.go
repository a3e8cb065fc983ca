package benchmark

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

// devNode is a `nimbus dev` a run started with its own data directory.
// stop ends it and removes its data.
type devNode struct {
	url, token string
	tmp        string // holds the data directory
	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	out        lockedBuffer  // everything the node printed
}

var (
	apiLine    = regexp.MustCompile(`API:\s+(http://\S+)`)
	workerLine = regexp.MustCompile(`Worker:\s+.*executor:\s+(.+)$`)
)

// parseBanner returns the API URL and the worker's executor named in the
// banner `nimbus dev` prints, "" for what it does not name.
func parseBanner(banner string) (apiURL, executor string) {
	for _, line := range strings.Split(banner, "\n") {
		if m := apiLine.FindStringSubmatch(line); m != nil && apiURL == "" {
			apiURL = m[1]
		}
		if m := workerLine.FindStringSubmatch(line); m != nil && executor == "" {
			executor = strings.TrimSpace(m[1])
		}
	}
	return apiURL, executor
}

// startDev starts `exe dev --data <tmp> --listen 127.0.0.1:0` and waits
// (up to a minute) for its API line and admin token.
func startDev(ctx context.Context, exe string) (*devNode, error) {
	tmp, err := os.MkdirTemp("", "nimbus-bench")
	if err != nil {
		return nil, err
	}
	n := &devNode{tmp: tmp, done: make(chan struct{})}
	data := filepath.Join(tmp, "data")
	n.cmd = exec.Command(exe, "dev", "--data", data, "--listen", "127.0.0.1:0")
	n.cmd.Stderr = &n.out
	// If this process dies without stopping the node, the node goes too.
	// The signal is tied to the thread that started it, hence the lock.
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
		sent := false
		for sc.Scan() {
			n.out.Write([]byte(sc.Text() + "\n"))
			if u, _ := parseBanner(sc.Text()); u != "" && !sent {
				urlc <- u
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { n.cmd.Wait(); close(n.done) }()
	fail := func(err error) (*devNode, error) {
		n.stop()
		return nil, err
	}
	select {
	case n.url = <-urlc:
	case <-n.done:
		return fail(fmt.Errorf("benchmark: nimbus dev exited before serving:\n%s", n.out.String()))
	case <-time.After(time.Minute):
		return fail(fmt.Errorf("benchmark: nimbus dev printed no API line within a minute:\n%s", n.out.String()))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return fail(err)
	}
	n.token = strings.TrimSpace(string(tok))
	return n, nil
}

// executor returns the worker's executor as the banner named it, "" until
// the banner's Worker line (printed after its API line) is out.
func (n *devNode) executor() string {
	_, e := parseBanner(n.out.String())
	return e
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
		err = fmt.Errorf("benchmark: nimbus dev did not stop within 30s of SIGINT; killed it")
	}
	if rmErr := os.RemoveAll(n.tmp); rmErr != nil {
		err = fmt.Errorf("benchmark: removing nimbus dev's data: %w", rmErr)
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
