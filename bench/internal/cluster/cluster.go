// Package cluster is the harness the benchmark programs under bench/ share
// to run a local Nimbus cluster: three `nimbus server` processes started as
// scripts/cluster-local starts them (--bootstrap-expect 3, --join,
// --bootstrap-token-file) on free 127.0.0.1 ports, and one or more
// `nimbus worker`s (unsandboxed unless asked), with their data and logs in
// a temporary directory.
//
// Each process leads its own process group, so that a kill reaches
// anything it starts, and dies with the benchmark if the benchmark dies
// without stopping it.
package cluster

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

// Options say how to start a cluster.
type Options struct {
	// Name names the benchmark: its temporary directory is
	// nimbus-bench-<Name>*, and Close reports a kept one as "<Name>: ...".
	Name string
	// Bin is the nimbus binary to run; empty builds nimbus/cmd/nimbus
	// into the temporary directory.
	Bin string
	// Slots is each worker's --slots; 0 means 1.
	Slots int
	// Workers is how many workers to start (w1, w2, ...); 0 means 1.
	Workers int
	// NoWorker starts no worker at all (Workers is ignored): the
	// benchmark brings its own (see Spawn).
	NoWorker bool
	// Servers is how many servers to start (3 or 5); 0 means 3.
	Servers int
	// Sandbox runs the workers sandboxed, as a real deployment does
	// (needs root). Unsandboxed, a benchmark measures the cluster, not
	// the sandbox.
	Sandbox bool
	// WorkerArgs are added to every worker's flags, ServerArgs to every
	// server's.
	WorkerArgs, ServerArgs []string
	// Keep keeps the temporary directory, with every process's log, on
	// Close.
	Keep bool
}

// Cluster is three servers and the workers this benchmark started. Its
// methods are called from one goroutine; Proc.Alive may be called from any.
type Cluster struct {
	Dir     string  // data of every process, their logs, the token file
	Bin     string  // the nimbus binary run
	Token   string  // the bootstrap token, an admin key for the API
	Servers []*Proc // s1, s2, s3
	Worker  *Proc   // w1, the first of Workers
	Workers []*Proc // w1, w2, ...
	// Others are the processes a benchmark started with Spawn.
	Others []*Proc

	keep bool
	name string
}

// Proc is one process of the cluster, with what it needs to be started
// again on the same flags and data. Its exported fields are read-only.
type Proc struct {
	ID  string // s1, s2, s3 or w1
	API string // API address (host:port) of a server; empty for the worker
	Log string // stdout and stderr, appended across restarts

	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// Start makes a temporary directory, builds nimbus into it (unless o.Bin
// names a binary) and starts the servers (three unless o.Servers) and the workers. Workers
// run unsandboxed unless o.Sandbox: a benchmark of the cluster measures
// the cluster, not the sandbox. (A sandboxed worker sweeps only the
// cgroups named after its own ID.) On error everything started is stopped and the
// directory removed again (unless o.Keep). Start does not wait for a
// leader: see Settle.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	dir, err := os.MkdirTemp("", "nimbus-bench-"+o.Name)
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, Bin: o.Bin, Token: newToken(), keep: o.Keep, name: o.Name}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
			c = nil
		}
	}()
	if c.Bin == "" {
		c.Bin = filepath.Join(dir, "nimbus")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.Bin, "nimbus/cmd/nimbus")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return c, fmt.Errorf("build nimbus: %w", err)
		}
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(c.Token+"\n"), 0o600); err != nil {
		return c, err
	}
	n := o.Servers
	if n == 0 {
		n = 3
	}
	var apis, rafts []string
	for i := 0; i < 2*n; i++ {
		a, err := FreePort()
		if err != nil {
			return c, err
		}
		if i < n {
			apis = append(apis, a)
		} else {
			rafts = append(rafts, a)
		}
	}
	join := strings.Join(apis, ",")
	for i := range apis {
		id := fmt.Sprintf("s%d", i+1)
		c.Servers = append(c.Servers, &Proc{
			ID: id, API: apis[i], Log: filepath.Join(dir, id+".log"), bin: c.Bin,
			args: []string{"server", "--node-id", id, "--data", filepath.Join(dir, id),
				"--listen", apis[i], "--raft", rafts[i], "--bootstrap-expect", strconv.Itoa(n),
				"--join", join, "--bootstrap-token-file", tokenFile},
		})
		last := c.Servers[len(c.Servers)-1]
		last.args = append(last.args, o.ServerArgs...)
	}
	for _, s := range c.Servers {
		if err := s.Start(); err != nil {
			return c, err
		}
	}
	slots := max(o.Slots, 1)
	workers := max(o.Workers, 1)
	if o.NoWorker {
		workers = 0
	}
	for i := range workers {
		id := fmt.Sprintf("w%d", i+1)
		args := []string{"worker", "--id", id, "--servers", join, "--data", filepath.Join(dir, id),
			"--listen", "127.0.0.1:0", "--slots", strconv.Itoa(slots)}
		if !o.Sandbox {
			args = append(args, "--insecure-no-sandbox")
		}
		w := &Proc{ID: id, Log: filepath.Join(dir, id+".log"), bin: c.Bin, env: []string{"NIMBUS_TOKEN=" + c.Token},
			args: append(args, o.WorkerArgs...)}
		c.Workers = append(c.Workers, w)
		if err := w.Start(); err != nil {
			return c, err
		}
	}
	if len(c.Workers) > 0 {
		c.Worker = c.Workers[0]
	}
	return c, nil
}

// Spawn starts another process of the benchmark's own (bin with args,
// env added to this process's environment) as the cluster's processes
// are started: its own process group, its log at Dir/<id>.log, stopped
// with the cluster.
func (c *Cluster) Spawn(id, bin string, args, env []string) (*Proc, error) {
	p := &Proc{ID: id, Log: filepath.Join(c.Dir, id+".log"), bin: bin, args: args, env: env}
	if err := p.Start(); err != nil {
		return nil, err
	}
	c.Others = append(c.Others, p)
	return p, nil
}

// Procs returns the servers, then the workers, then the processes Spawn
// started.
func (c *Cluster) Procs() []*Proc {
	return append(append(append([]*Proc(nil), c.Servers...), c.Workers...), c.Others...)
}

// Start runs p (again, after it exited) in its own process group, on the
// same flags and data, its output appended to p.Log.
func (p *Proc) Start() error {
	if p.done != nil && p.Alive() {
		return fmt.Errorf("start %s: it still runs", p.ID)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, so that a kill reaches anything it starts; and if
	// this process dies without stopping it, it goes too. Pdeathsig is
	// tied to the starting thread, hence the lock.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.ID, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Alive reports whether p has been started and not reaped yet.
func (p *Proc) Alive() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the process id of p's last start, which leads its process
// group; 0 if p was never started.
func (p *Proc) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to p's process group. It returns as soon as the
// signal is sent; Reaped waits for the process to be gone.
func (p *Proc) Kill() error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// Reaped waits up to 10 s for p's process to exit after a Kill.
func (p *Proc) Reaped() error {
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s still runs 10s after SIGKILL", p.ID)
	}
}

// Stop interrupts every running process group as Ctrl-C does, all at
// once, and kills those still running 30 s later. The logs stay.
func (c *Cluster) Stop() error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range c.Procs() {
		if !p.Alive() {
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
				errs = append(errs, fmt.Errorf("%s did not stop within 30s of SIGINT; killed it", p.ID))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops what still runs (see Stop) and removes the directory as
// best it can, or, with Options.Keep, says on stderr where it is.
func (c *Cluster) Close() error {
	err := c.Stop()
	if c.keep {
		fmt.Fprintf(os.Stderr, "%s: data and logs kept in %s\n", c.name, c.Dir)
	} else {
		os.RemoveAll(c.Dir)
	}
	return err
}

// Tail returns the last n lines of every process's log, for an error.
func (c *Cluster) Tail(n int) string {
	var b strings.Builder
	for _, p := range c.Procs() {
		data, err := os.ReadFile(p.Log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines of %s)\n%s\n", p.ID, len(lines), p.Log, strings.Join(lines, "\n"))
	}
	return b.String()
}

// newToken makes a key of the form nimbus_<12 hex>_<64 hex>, as
// scripts/cluster-local does.
func newToken() string {
	id, secret := make([]byte, 6), make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	return "nimbus_" + hex.EncodeToString(id) + "_" + hex.EncodeToString(secret)
}

// FreePort returns an address on 127.0.0.1 that was free a moment ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// End stops the cluster and removes its directory (see Close) at the end
// of a benchmark, deferred with the run's error: a failed run's error
// gets the last lines of every log, and a failure to stop is added to
// it. notes, unless nil, gets the log notes (LogNotes) of the stopped
// processes first.
func (c *Cluster) End(err *error, notes *[]Note) {
	if *err != nil {
		*err = fmt.Errorf("%w\n%s", *err, c.Tail(20))
	}
	*err = errors.Join(*err, c.Stop())
	if notes != nil {
		*notes = c.LogNotes()
	}
	*err = errors.Join(*err, c.Close())
}
