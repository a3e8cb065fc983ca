package worker

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// runStock keeps, per runtime that has run an interactive run (from its
// first run on: a worker that runs none stocks none), a few sandboxes started ahead at the
// lowest priority with the run starter waiting in them, their stdio
// pipes in place and no code yet: a run then costs attaching its files
// and starting its entry, not building a sandbox and starting Python.
// Each stocked sandbox serves one run only. Only executors that can
// attach code late (sandbox.CodeAttacher) stock; others start each run
// afresh.
type runStock struct {
	w       *Worker
	starter string // the run starter's path on the host
	mu      sync.Mutex
	ready   map[string][]*stockedRun // by runtime name
	filling map[string]int
	closed  bool
}

// runStockDepth is how many sandboxes a runtime's stock keeps.
const runStockDepth = 2

// stockedRun is a sandbox waiting for its run, and the worker's ends of
// its pipes.
type stockedRun struct {
	proc                sandbox.Process
	stdin, stdout, errs *os.File // the program's stdin (to write), stdout and stderr (to read)
	start               *os.File // fd 3 of the run starter: SendRun writes the run there
}

func (s *stockedRun) close() {
	s.proc.Kill()
	s.stdin.Close()
	s.stdout.Close()
	s.errs.Close()
	s.start.Close()
}

// newRunStock returns the worker's run stock, or nil when its executor
// cannot stock (or the starter cannot be written).
func newRunStock(w *Worker) *runStock {
	if _, ok := w.cfg.Executor.(sandbox.CodeAttacher); !ok {
		return nil
	}
	starter, err := python.WriteRunStarter(filepath.Dir(w.bootstrap))
	if err != nil {
		w.cfg.Log.Warn("interactive runs start without a stock", "err", err)
		return nil
	}
	return &runStock{w: w, starter: starter, ready: map[string][]*stockedRun{}, filling: map[string]int{}}
}

// take returns a stocked sandbox of rt, or nil when there is none now,
// and refills the stock in the background.
func (s *runStock) take(rt python.Runtime) *stockedRun {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	var got *stockedRun
	if q := s.ready[rt.Name]; len(q) > 0 {
		got = q[0]
		s.ready[rt.Name] = q[1:]
	}
	s.mu.Unlock()
	s.fill(rt)
	return got
}

// fill starts, in the background, what rt's stock lacks.
func (s *runStock) fill(rt python.Runtime) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && len(s.ready[rt.Name])+s.filling[rt.Name] < runStockDepth {
		s.filling[rt.Name]++
		go func() {
			// As the instance pool's fills do (prestartPool.fill), wait
			// until no start is under way: building a sandbox takes the
			// kernel's mount locks and CPU the run just taken needs.
			for t0 := time.Now(); !s.w.quiet() && time.Since(t0) < fillPatience; {
				time.Sleep(fillPoll)
			}
			sr, err := s.start(rt)
			s.mu.Lock()
			defer s.mu.Unlock()
			s.filling[rt.Name]--
			if err != nil {
				s.w.cfg.Log.Debug("could not stock a sandbox for runs", "runtime", rt.Name, "err", err)
				return
			}
			if s.closed {
				sr.close()
				return
			}
			s.ready[rt.Name] = append(s.ready[rt.Name], sr)
		}()
	}
}

// start starts one sandbox with the run starter waiting in it, at the
// lowest priority, with no code yet.
func (s *runStock) start(rt python.Runtime) (*stockedRun, error) {
	return s.w.startStarter(rt, s.starter, sandbox.Spec{MemoryMB: DefaultRunMemory, LateCode: true, Background: true})
}

// close ends every stocked sandbox; the stock fills no more.
func (s *runStock) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	ready := s.ready
	s.ready = map[string][]*stockedRun{}
	s.mu.Unlock()
	for _, q := range ready {
		for _, sr := range q {
			sr.close()
		}
	}
}
