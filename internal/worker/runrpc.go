package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"nimbus/internal/model"
	"nimbus/internal/rpc/rpcpb"
)

// DefaultRunWindow is how many output bytes of a run a worker sends
// ahead of the server's acknowledgements when the server names no
// window: what a server holds of one run's output at most.
const DefaultRunWindow = 64 << 10

// Run serves an interactive run for a server: the first input starts it
// (or is refused, as Invoke refuses), then the output goes back in order,
// never more than the start's window ahead of the server's
// acknowledgements, and the exit last. The server going away (the
// stream's context ends) ends the run.
func (a *Agent) Run(stream rpcpb.Worker_RunServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	st := first.Start
	if st == nil {
		return status.Error(codes.InvalidArgument, "a run's first message starts it")
	}
	if r := a.refusal(); r != "" {
		return stream.Send(&rpcpb.RunOutput{Refused: r})
	}
	ctx := stream.Context()
	spec, err := RunSpecFromProto(st)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	run, err := a.w.StartRun(ctx, spec)
	switch {
	case errors.Is(err, ErrNoCapacity):
		return stream.Send(&rpcpb.RunOutput{Refused: "capacity"})
	case errors.Is(err, ErrClosed):
		return stream.Send(&rpcpb.RunOutput{Refused: "draining"})
	case err != nil:
		return stream.Send(&rpcpb.RunOutput{Refused: err.Error()})
	}
	defer run.Close()
	if err := stream.Send(&rpcpb.RunOutput{Started: true}); err != nil {
		return err
	}
	window := st.Window
	if window <= 0 {
		window = DefaultRunWindow
	}
	fc := &flowCredit{window: window}
	fc.cond = sync.NewCond(&fc.mu)
	go func() {
		defer fc.stop()
		for {
			in, err := stream.Recv()
			if err != nil {
				run.Close() // the server went away: nobody reads the output
				return
			}
			if in.Ack > 0 {
				fc.ack(in.Ack)
			}
			if len(in.Stdin) > 0 || in.Eof || in.Signal != "" {
				run.Input(RunInput{Stdin: in.Stdin, EOF: in.Eof, Signal: in.Signal})
			}
		}
	}()
	for {
		ev, err := run.Next(ctx)
		if err != nil {
			return err
		}
		if ev.Exit != nil {
			return stream.Send(&rpcpb.RunOutput{Exit: RunExitToProto(ev.Exit)})
		}
		if !fc.take(int64(len(ev.Data))) {
			return ctx.Err()
		}
		if err := stream.Send(&rpcpb.RunOutput{Stream: int32(ev.Stream), Data: ev.Data}); err != nil {
			return err
		}
	}
}

// flowCredit counts the output bytes sent and not acknowledged.
type flowCredit struct {
	mu      sync.Mutex
	cond    *sync.Cond
	window  int64
	unacked int64
	stopped bool
}

// take waits until n more bytes fit in the window and counts them; false
// once the stream is gone.
func (f *flowCredit) take(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.stopped && f.unacked > 0 && f.unacked+n > f.window {
		f.cond.Wait()
	}
	f.unacked += n
	return !f.stopped
}

func (f *flowCredit) ack(n int64) {
	f.mu.Lock()
	f.unacked = max(f.unacked-n, 0)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *flowCredit) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

// RunSpecFromProto is the run a server's start message asks for.
func RunSpecFromProto(st *rpcpb.RunStart) (RunSpec, error) {
	var fn *model.Function
	if len(st.Function) > 0 {
		fn = new(model.Function)
		if err := json.Unmarshal(st.Function, fn); err != nil {
			return RunSpec{}, fmt.Errorf("the run's function: %w", err)
		}
	}
	return RunSpec{
		Function: fn,
		ID:       st.Id, Namespace: st.Namespace, Runtime: st.Runtime, Files: st.Files, Entry: st.Entry,
		Args: st.Args, Env: st.Env, SlotWait: time.Duration(st.SlotWaitMs) * time.Millisecond,
		Limits: RunLimits{
			Timeout: time.Duration(st.TimeoutMs) * time.Millisecond, IdleTimeout: time.Duration(st.IdleTimeoutMs) * time.Millisecond,
			MemoryMB: int(st.MemoryMb), OutputBytes: st.OutputLimit,
		},
	}, nil
}

// RunSpecToProto is the start message of spec, with the output window.
func RunSpecToProto(spec RunSpec, window int64) (*rpcpb.RunStart, error) {
	var fn []byte
	if spec.Function != nil {
		var err error
		if fn, err = json.Marshal(spec.Function); err != nil {
			return nil, err
		}
	}
	return &rpcpb.RunStart{
		Function: fn,
		Id:       spec.ID, Namespace: spec.Namespace, Runtime: spec.Runtime, Files: spec.Files, Entry: spec.Entry,
		Args: spec.Args, Env: spec.Env, SlotWaitMs: spec.SlotWait.Milliseconds(),
		TimeoutMs: spec.Limits.Timeout.Milliseconds(), IdleTimeoutMs: spec.Limits.IdleTimeout.Milliseconds(),
		MemoryMb: int32(spec.Limits.MemoryMB), OutputLimit: spec.Limits.OutputBytes, Window: window,
	}, nil
}

// RunExitToProto and RunExitFromProto carry a run's exit over RPC.
func RunExitToProto(ex *RunExit) *rpcpb.RunExit {
	return &rpcpb.RunExit{
		Code: int32(ex.Code), Signal: ex.Signal, Verdict: ex.Verdict, WallUs: ex.Wall.Microseconds(),
		CpuUs: ex.CPU.Microseconds(), MaxMemoryBytes: ex.MaxMemB, OutputBytes: ex.Output, WorkerId: ex.WorkerID,
	}
}

func RunExitFromProto(ex *rpcpb.RunExit) *RunExit {
	return &RunExit{
		Code: int(ex.Code), Signal: ex.Signal, Verdict: ex.Verdict, Wall: time.Duration(ex.WallUs) * time.Microsecond,
		CPU: time.Duration(ex.CpuUs) * time.Microsecond, MaxMemB: ex.MaxMemoryBytes, Output: ex.OutputBytes, WorkerID: ex.WorkerId,
	}
}
