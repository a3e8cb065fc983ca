package queue

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"nimbus/internal/fsm"
)

// finisher batches outcomes into Finish commands, and calls the outcome
// hook for those the FSM accepted. Its owner adds nothing after close
// (the Dispatcher waits for its runs first); close commits what was
// added before it.
type finisher struct {
	cp  Control
	log *slog.Logger

	mu      sync.Mutex
	pending []fsm.Outcome
	notes   []*Outcome
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	onDone  func(*Outcome)
}

func newFinisher(cp Control, log *slog.Logger) *finisher {
	f := &finisher{cp: cp, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *finisher) add(o fsm.Outcome, note *Outcome) {
	f.mu.Lock()
	f.pending = append(f.pending, o)
	f.notes = append(f.notes, note)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *finisher) run() {
	defer close(f.done)
	for {
		select {
		case <-f.wake:
			f.flush()
		case <-f.stop:
			f.flush()
			return
		}
	}
}

func (f *finisher) flush() {
	for {
		f.mu.Lock()
		outs, notes := f.pending, f.notes
		if len(outs) > 512 {
			outs, notes = outs[:512], notes[:512]
			f.pending, f.notes = f.pending[512:], f.notes[512:]
		} else {
			f.pending, f.notes = nil, nil
		}
		f.mu.Unlock()
		if len(outs) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := fsm.Apply(ctx, f.cp, fsm.Finish{Outcomes: outs, Now: time.Now().UTC()})
		cancel()
		if err != nil {
			// Leadership lost or no quorum: the leases expire and the
			// next leader runs these events again.
			f.log.Warn("committing async outcomes", "count", len(outs), "err", err)
			continue
		}
		refused := res.Refused
		for i, o := range outs {
			if reason, bad := refused[o.RequestID]; bad {
				f.log.Info("async outcome refused", "request_id", o.RequestID, "reason", reason)
				continue
			}
			if notes[i] != nil && f.onDone != nil {
				f.onDone(notes[i])
			}
		}
	}
}

func (f *finisher) close() {
	close(f.stop)
	<-f.done
}
