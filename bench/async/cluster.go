package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cluster is three `nimbus server` processes and one `nimbus worker` on
// 127.0.0.1 that this benchmark started, with their data in dir. Each
// process leads its own process group; stop ends every group it started.
// Its methods are called from one goroutine, except alive.
// It is bench/failover's harness without restarts.
type cluster struct {
	dir, bin, token string
	servers         []*proc
	worker          *proc
}

// proc is one process of the cluster, with what it needs to be started
// again on the same flags and data.
type proc struct {
	id   string
	args []string
	env  []string
	api  string // API address of a server
	log  string // stdout and stderr, appended across restarts
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// newToken makes a key of the form nimbus_<12 hex>_<64 hex>, as
// scripts/cluster-local does.
func newToken() string {
	id, secret := make([]byte, 6), make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	return "nimbus_" + hex.EncodeToString(id) + "_" + hex.EncodeToString(secret)
}

// freePort returns an address on 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startCluster builds nimbus into dir (unless bin names a binary) and
// starts three servers as scripts/cluster-local does, on free ports, and
// one worker with the given slots. The worker runs unsandboxed: this
// measures the queue, not the sandbox, and it leaves the cgroups of other
// Nimbus processes on this machine alone. On error everything started is
// stopped again.
func startCluster(ctx context.Context, dir, bin string, slots int) (c *cluster, err error) {
	c = &cluster{dir: dir, bin: bin, token: newToken()}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop())
			c = nil
		}
	}()
	if c.bin == "" {
		c.bin = filepath.Join(dir, "nimbus")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "nimbus/cmd/nimbus")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return c, fmt.Errorf("build nimbus: %w", err)
		}
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		return c, err
	}
	var apis, rafts []string
	for i := 0; i < 6; i++ {
		a, err := freePort()
		if err != nil {
			return c, err
		}
		if i < 3 {
			apis = append(apis, a)
		} else {
			rafts = append(rafts, a)
		}
	}
	join := strings.Join(apis, ",")
	for i := range apis {
		id := fmt.Sprintf("s%d", i+1)
		c.servers = append(c.servers, &proc{
			id: id, api: apis[i], log: filepath.Join(dir, id+".log"),
			args: []string{"server", "--node-id", id, "--data", filepath.Join(dir, id),
				"--listen", apis[i], "--raft", rafts[i], "--bootstrap-expect", "3",
				"--join", join, "--bootstrap-token-file", tokenFile},
		})
	}
	for _, s := range c.servers {
		if err := c.start(s); err != nil {
			return c, err
		}
	}
	c.worker = &proc{
		id: "w1", log: filepath.Join(dir, "w1.log"), env: []string{"NIMBUS_TOKEN=" + c.token},
		args: []string{"worker", "--id", "w1", "--servers", join, "--data", filepath.Join(dir, "w1"),
			"--listen", "127.0.0.1:0", "--slots", strconv.Itoa(slots), "--insecure-no-sandbox"},
	}
	return c, c.start(c.worker)
}

// start runs p in its own process group, its output appended to p.log.
func (c *cluster) start(p *proc) error {
	if p.done != nil && c.alive(p) {
		return fmt.Errorf("start %s: it still runs", p.id)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, so that a kill reaches anything it starts; and if
	// this process dies without stopping it, it goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.id, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// alive reports whether p's process has not been reaped yet.
func (c *cluster) alive(p *proc) bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop interrupts every running process group as Ctrl-C does, all at
// once, and kills those still running 30 s later.
func (c *cluster) stop() error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range append([]*proc{c.worker}, c.servers...) {
		if p == nil || p.done == nil || !c.alive(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgid := p.cmd.Process.Pid
			syscall.Kill(-pgid, syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.done
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s did not stop within 30s of SIGINT; killed it", p.id))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tail returns the last n lines of every process's log, for an error.
func (c *cluster) tail(n int) string {
	var b strings.Builder
	for _, p := range append(append([]*proc(nil), c.servers...), c.worker) {
		if p == nil {
			continue
		}
		data, err := os.ReadFile(p.log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines of %s)\n%s\n", p.id, len(lines), p.log, strings.Join(lines, "\n"))
	}
	return b.String()
}
