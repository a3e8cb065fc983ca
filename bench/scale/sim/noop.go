package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"nimbus/internal/sandbox"
)

// noopExecutor is a sandbox.Executor that starts no process at all: each
// "instance" is a goroutine speaking the instance protocol of
// internal/runtime/python on the pipes the worker made for it. It answers
// the init frame with ready and every invoke frame with the result null,
// at once. It runs no code, isolates nothing and exists only in this
// simulator's binary: neither `nimbus worker` nor `nimbus dev` can reach
// it.
type noopExecutor struct{}

func (noopExecutor) Name() string                     { return "SIMULATED-noop-runs-nothing" }
func (noopExecutor) TaskRoot(hostDir string) string   { return hostDir }
func (noopExecutor) MountPath(m sandbox.Mount) string { return m.Source }

// Start keeps its own copies of the child's ends of the pipes (the worker
// closes its copies after Start, as it would after a fork) and serves
// them until Kill.
func (noopExecutor) Start(spec sandbox.Spec) (sandbox.Process, error) {
	if len(spec.ExtraFiles) < 2 || spec.Output == nil {
		return nil, errors.New("noop executor: expected the request and response pipes and the log")
	}
	var files []*os.File
	for _, f := range []*os.File{spec.ExtraFiles[0], spec.ExtraFiles[1], spec.Output} {
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			for _, g := range files {
				g.Close()
			}
			return nil, err
		}
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), f.Name()))
	}
	p := &noopProc{req: files[0], resp: files[1], log: files[2], done: make(chan struct{})}
	go p.serve()
	return p, nil
}

// noopProc is one simulated instance.
type noopProc struct {
	req, resp, log *os.File
	once           sync.Once
	done           chan struct{}
}

func (p *noopProc) Pid() int { return 0 }

func (p *noopProc) Wait() sandbox.Exit {
	<-p.done
	return sandbox.Exit{Code: -1, Signal: "SIGKILL"}
}

func (p *noopProc) Kill() {
	p.once.Do(func() {
		p.req.Close()
		p.resp.Close()
		p.log.Close()
		close(p.done)
	})
}

// serve answers frames until the request pipe closes: the first is the
// JSON init frame, the rest invoke frames ('I' | deadline ms (8) | id
// length (2) | id | event).
func (p *noopProc) serve() {
	defer p.Kill()
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	out := make([]byte, 0, 256)
	first := true
	for {
		if _, err := io.ReadFull(p.req, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(p.req, buf); err != nil {
			return
		}
		out = out[:0]
		switch {
		case first:
			first = false
			ready, _ := json.Marshal(map[string]any{"ready": true})
			out = binary.BigEndian.AppendUint32(out, uint32(len(ready)))
			out = append(out, ready...)
		case n >= 11 && buf[0] == 'I':
			idLen := int(binary.BigEndian.Uint16(buf[9:11]))
			if 11+idLen > n {
				return
			}
			id := buf[11 : 11+idLen]
			body := 1 + 8 + 2 + idLen + 4
			out = binary.BigEndian.AppendUint32(out, uint32(body))
			out = append(out, 'O')
			out = binary.BigEndian.AppendUint64(out, 4096) // max RSS, KB
			out = binary.BigEndian.AppendUint16(out, uint16(idLen))
			out = append(out, id...)
			out = append(out, "null"...)
		default:
			continue // an acknowledgement: nothing streams here
		}
		if _, err := p.resp.Write(out); err != nil {
			return
		}
	}
}
