package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// reaperArg is argv[2] of the nimbus binary re-executed as a worker's
// reaper (argv[1] is InitArg, so the same entry point serves it).
const reaperArg = "reaper"

// A sandbox dies with its worker: the parent-death signal kills its pid
// 1, which takes the rest of its pid namespace along. A frozen sandbox
// (cgroup v1) takes no signal until it is thawed, though, and once the
// worker is gone no one would thaw it. The reaper does: a small process
// the executor starts beside its sandboxes, outside all of them, that
// waits on a pipe whose only writer is the worker. When the worker ends,
// however it ends, the pipe closes, and the reaper thaws and kills every
// sandbox the worker left, as a restarted worker's sweep would.

// reaper is the worker's side of it.
type reaper struct {
	cmd  *exec.Cmd
	pipe *os.File // the write end: closing it (or dying) sets the reaper off
}

// startReaper starts the reaper over the v1 controller bases of a
// worker's sandboxes (the freezer's first).
func startReaper(self string, bases []string) (*reaper, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:       self,
		Args:       append([]string{"nimbus", InitArg, reaperArg}, bases...),
		Env:        []string{},
		ExtraFiles: []*os.File{r},
		Stderr:     os.Stderr,
		// A process group of its own: a Ctrl-C meant for the worker
		// does not reach it (it ignores the signals anyway).
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("sandbox: start the reaper: %w", err)
	}
	return &reaper{cmd: cmd, pipe: w}, nil
}

// stop sets the reaper off and waits for it: the worker calls it once its
// sandboxes are gone, so it finds nothing to do.
func (r *reaper) stop() {
	r.pipe.Close()
	r.cmd.Wait()
}

// reaperMain is the reaper's process: it waits until its pipe (fd 3)
// closes, then kills and removes the sandboxes it finds below bases.
func reaperMain(bases []string) {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	io.Copy(io.Discard, os.NewFile(3, "worker"))
	// The sandboxes the worker left, named once: a worker restarted on
	// the same state directory creates its own below the same bases,
	// and those are not the reaper's.
	if len(bases) == 0 {
		os.Exit(0)
	}
	entries, err := os.ReadDir(bases[0])
	if err != nil {
		os.Exit(0) // nothing was ever created
	}
	var errs []error
	for _, b := range bases { // the freezer's first: it thaws
		for _, e := range entries {
			if e.IsDir() {
				errs = append(errs, killAndRemove(filepath.Join(b, e.Name())))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "nimbus sandbox reaper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
