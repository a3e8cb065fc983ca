package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// runService is a service over a real worker of one slot (the process
// executor: this test needs no root).
func runService(t *testing.T) *Service {
	t.Helper()
	rts, err := python.Discover()
	if err != nil || len(rts) == 0 {
		t.Skipf("no Python runtime: %v", err)
	}
	blobs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{ID: "w", DataDir: t.TempDir(), Slots: 1, Runtimes: rts, Executor: sandbox.NewProcessExecutor(),
		Blobs: blobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	p := placement.New(nil, placement.Local(w))
	s, _ := newService(t, Deps{Placer: p, Concurrency: placement.NewConcurrency(), Slots: p.Slots})
	return s
}

func program(src string) RunRequest {
	return RunRequest{Files: map[string][]byte{"main.py": []byte(src)}}
}

func TestRunsWaitInTheirNamespacesQueueInOrder(t *testing.T) {
	s := runService(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := s.StartRun(ctx, "default", "hold", program("import sys\nsys.stdin.read()\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		sess *RunSession
		err  error
	}
	positions := make(chan int, 10)
	second := make(chan started, 1)
	go func() {
		sess, err := s.StartRun(ctx, "default", "second", program("print(2)\n"), func(q RunQueued) { positions <- q.Position })
		second <- started{sess, err}
	}()
	if p := <-positions; p != 1 {
		t.Fatalf("the second run is at %d, want 1", p)
	}
	// A third waits behind it; one whose client goes away leaves the queue.
	thirdCtx, leave := context.WithCancel(ctx)
	third := make(chan error, 1)
	go func() {
		_, err := s.StartRun(thirdCtx, "default", "third", program("print(3)\n"), func(q RunQueued) { positions <- q.Position })
		third <- err
	}()
	if p := <-positions; p != 2 {
		t.Fatalf("the third run is at %d, want 2", p)
	}
	leave()
	if err := <-third; !errors.Is(err, context.Canceled) {
		t.Fatalf("the third run's wait: %v", err)
	}
	holder.Input(worker.RunInput{EOF: true})
	for {
		ev, err := holder.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Exit != nil {
			break
		}
	}
	holder.Close()
	got := <-second
	if got.err != nil {
		t.Fatal(got.err)
	}
	defer got.sess.Close()
	var out []byte
	for {
		ev, err := got.sess.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Exit != nil {
			break
		}
		out = append(out, ev.Data...)
	}
	if string(out) != "2\n" {
		t.Fatalf("the second run wrote %q", out)
	}
	if n := len(s.runs.waiting["default"]); n != 0 {
		t.Fatalf("%d runs left in the queue", n)
	}
}

func TestARunPastTheQueueLimitIsRefused(t *testing.T) {
	s := runService(t)
	s.runs.init()
	for i := 0; i < RunQueueLimit; i++ {
		s.runs.waiting["default"] = append(s.runs.waiting["default"], &runWaiter{})
	}
	if err := s.CheckRunQueue("default"); !errors.Is(err, ErrRunQueueFull) || !errors.Is(err, worker.ErrNoCapacity) {
		t.Fatalf("CheckRunQueue: %v", err)
	}
	if err := s.CheckRunQueue("other"); err != nil {
		t.Fatalf("another namespace's queue: %v", err)
	}
}

func TestBadRunRequestsAreInvalid(t *testing.T) {
	s := runService(t)
	for _, req := range []RunRequest{
		{},
		{Files: map[string][]byte{"a.txt": nil}, Entry: "a.txt"},
		{Files: map[string][]byte{"main.py": nil}, Env: map[string]string{"A=B": "c"}},
		{Files: map[string][]byte{"main.py": nil}, Limits: worker.RunLimits{IdleTimeout: 2 * time.Hour}},
		{Files: map[string][]byte{"main.py": nil}, Limits: worker.RunLimits{Timeout: time.Millisecond}},
		{Files: map[string][]byte{"main.py": nil}, Runtime: "provided"},
	} {
		if _, err := s.StartRun(context.Background(), "default", "x", req, nil); !errors.Is(err, state.ErrInvalid) {
			t.Fatalf("%+v: %v, want ErrInvalid", req, err)
		}
	}
	big := program("")
	big.Files["data.txt"] = make([]byte, MaxRunSource+1)
	if _, err := s.StartRun(context.Background(), "default", "x", big, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}
