package node

import (
	"context"
	"log/slog"
	"sync"
)

// A component is one part of a node with a lifetime. A node starts its
// components in order and stops those that started in reverse order; a
// component whose Start fails is not stopped (it cleans up after itself),
// and the ones before it are. Start may wait (for a leader, for
// enrolment) until ctx ends; work that lasts goes in goroutines that Stop
// waits for.
type component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// step is a component made of two functions, either of which may be nil.
type step struct {
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

func (s step) Start(ctx context.Context) error {
	if s.start == nil {
		return nil
	}
	return s.start(ctx)
}

func (s step) Stop(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	return s.stop(ctx)
}

// starting is a component with nothing to stop.
func starting(f func(ctx context.Context) error) component { return step{start: f} }

// lifecycle runs a node's components (see run).
type lifecycle struct {
	failed chan error // services that ended with an error before Stop
}

func newLifecycle() *lifecycle { return &lifecycle{failed: make(chan error, 16)} }

// service is a component that runs f in a goroutine from Start until
// Stop: Stop calls halt (when not nil; for a server, its Shutdown), then
// cancels f's context, and waits for f to return. f ending early with an
// error stops the node with that error; ending early with nil is the end
// of a job (joining a cluster, say).
func (l *lifecycle) service(f func(ctx context.Context) error, halt func(ctx context.Context) error) component {
	s := &service{l: l, run: f, halt: halt}
	return s
}

type service struct {
	l    *lifecycle
	run  func(ctx context.Context) error
	halt func(ctx context.Context) error

	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	stopping bool
}

func (s *service) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		err := s.run(ctx)
		s.mu.Lock()
		early := !s.stopping
		s.mu.Unlock()
		if err != nil && early {
			select {
			case s.l.failed <- err:
			default: // the node is stopping already
			}
		}
	}()
	return nil
}

func (s *service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	var err error
	if s.halt != nil {
		err = s.halt(ctx)
	}
	s.cancel()
	<-s.done
	return err
}

// run starts comps in order, waits until ctx ends or a service fails,
// then stops what started in reverse order, each within shutdownGrace. It
// returns the error that ended it: a failed start or service. Errors in
// stopping are logged: the node has stopped all the same.
func (l *lifecycle) run(ctx context.Context, log *slog.Logger, comps ...component) error {
	var started []component
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			if err := started[i].Stop(sctx); err != nil {
				log.Warn("stopping", "err", err)
			}
			cancel()
		}
	}
	for _, c := range comps {
		if err := c.Start(ctx); err != nil {
			stopAll()
			return err
		}
		started = append(started, c)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-l.failed:
	}
	stopAll()
	return err
}
