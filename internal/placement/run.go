package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"nimbus/internal/model"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/worker"
)

// Runner is a target that can start interactive runs (every worker of
// this release; a test's fake target may not).
type Runner interface {
	Run(ctx context.Context, spec worker.RunSpec) (worker.RunConn, error)
}

// Run starts spec on the least loaded worker that offers its runtime and
// has a free slot. It returns worker.ErrNoCapacity when every such
// worker is full (the caller queues the run), and ErrNoWorkers when
// none offers the runtime. ctx bounds the whole run, not just its start.
func (p *Placer) Run(ctx context.Context, spec worker.RunSpec) (worker.RunConn, error) {
	order := p.rank(model.Function{FunctionConfig: model.FunctionConfig{Runtime: spec.Runtime}})
	if len(order) == 0 {
		if spec.Runtime != "" && len(p.Runtimes()) > 0 {
			return nil, fmt.Errorf("%w: none of the healthy workers offers runtime %s (they offer %s)",
				ErrNoWorkers, spec.Runtime, strings.Join(p.Runtimes(), ", "))
		}
		return nil, ErrNoWorkers
	}
	var last error = worker.ErrNoCapacity
	for _, t := range order {
		r, ok := t.(Runner)
		if !ok {
			continue
		}
		conn, err := r.Run(ctx, spec)
		if errors.Is(err, worker.ErrNoCapacity) || errors.Is(err, worker.ErrClosed) || errors.Is(err, ErrUnreachable) {
			last = err
			continue
		}
		return conn, err
	}
	if errors.Is(last, ErrUnreachable) || errors.Is(last, worker.ErrClosed) {
		return nil, ErrNoWorkers
	}
	return nil, last
}

// Run starts spec on the worker in this process.
func (l local) Run(ctx context.Context, spec worker.RunSpec) (worker.RunConn, error) {
	r, err := l.w.StartRun(ctx, spec)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Run starts spec on the remote worker over its Run stream. A worker
// that cannot be reached is ErrUnreachable; one that refuses for
// capacity, pressure or draining is worker.ErrNoCapacity.
func (w *remote) Run(ctx context.Context, spec worker.RunSpec) (worker.RunConn, error) {
	hb, _ := w.snapshot()
	c, err := w.reg.pool.Worker(hb.Address)
	if err != nil {
		return nil, ErrUnreachable
	}
	ctx, cancel := context.WithCancel(w.callCtx(ctx))
	var sentTo peer.Peer
	start, err := worker.RunSpecToProto(spec, worker.DefaultRunWindow)
	if err != nil {
		cancel()
		return nil, err
	}
	stream, err := c.Run(ctx, grpc.Peer(&sentTo))
	if err == nil {
		err = stream.Send(&rpcpb.RunInput{Start: start})
	}
	var first *rpcpb.RunOutput
	if err == nil {
		first, err = stream.Recv()
	}
	if err != nil {
		cancel()
		if ctx.Err() == nil {
			w.markDown()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	switch first.Refused {
	case "":
	case "capacity", "pressure", "draining":
		cancel()
		return nil, worker.ErrNoCapacity
	default:
		cancel()
		return nil, errors.New("worker refused the run: " + first.Refused)
	}
	return &remoteRun{stream: stream, cancel: cancel, worker: hb.WorkerId}, nil
}

// remoteRun is a run on a remote worker. The output it hands out is
// acknowledged to the worker when the caller comes back for more (it
// has passed the earlier chunks on), a quarter window at a time, so the
// worker never has more than its window in flight.
type remoteRun struct {
	stream rpcpb.Worker_RunClient
	cancel context.CancelFunc
	worker string

	sendMu  sync.Mutex // one Send at a time: Next's acks, the caller's input
	pending int64      // bytes handed out and not acknowledged; Next's own
	ended   bool       // the exit was handed out; Next's own
}

func (r *remoteRun) send(in *rpcpb.RunInput) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	return r.stream.Send(in)
}

// Next implements worker.RunConn. A worker lost mid-run ends it with an
// exit whose verdict is ErrorWorkerLost.
func (r *remoteRun) Next(ctx context.Context) (worker.RunEvent, error) {
	if r.ended {
		return worker.RunEvent{}, io.EOF
	}
	if r.pending >= worker.DefaultRunWindow/4 {
		if err := r.send(&rpcpb.RunInput{Ack: r.pending}); err == nil {
			r.pending = 0
		}
	}
	out, err := r.stream.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return worker.RunEvent{}, ctx.Err()
		}
		r.ended = true
		return worker.RunEvent{Exit: &worker.RunExit{Code: -1, Verdict: ErrorWorkerLost, WorkerID: r.worker}}, nil
	}
	if out.Exit != nil {
		r.ended = true
		return worker.RunEvent{Exit: worker.RunExitFromProto(out.Exit)}, nil
	}
	r.pending += int64(len(out.Data))
	return worker.RunEvent{Stream: int(out.Stream), Data: out.Data}, nil
}

// Input implements worker.RunConn.
func (r *remoteRun) Input(in worker.RunInput) error {
	return r.send(&rpcpb.RunInput{Stdin: in.Stdin, Eof: in.EOF, Signal: in.Signal})
}

// Close implements worker.RunConn: the worker sees the stream end and
// kills the run.
func (r *remoteRun) Close() { r.cancel() }
