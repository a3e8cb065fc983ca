package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"nimbus/internal/controlplane"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/runtime/python"
	"nimbus/internal/testcluster"
	"nimbus/internal/waitfor"
	"nimbus/internal/worker"
)

// body is a test message: its number, and how the test function treats
// it (poison: it always fails; flaky: it fails the first time; crash:
// the whole invocation fails the first time it holds it; block: the
// first batch holding it waits until its context ends).
type body struct {
	N      int  `json:"n"`
	Poison bool `json:"poison,omitempty"`
	Flaky  bool `json:"flaky,omitempty"`
	Crash  bool `json:"crash,omitempty"`
	Block  bool `json:"block,omitempty"`
}

func msg(n int) []byte { b, _ := json.Marshal(body{N: n}); return b }

// testFunction stands in for a deployed function: the consumer is what
// these tests test, over real brokers and a real Raft node (the e2e tests
// run real Python functions). It answers with batchItemFailures for the
// records that fail.
type testFunction struct {
	mu       sync.Mutex
	tries    map[int]int   // invocations that held each message
	ok       map[int]bool  // messages that succeeded
	batches  [][]int       // each invocation's messages, in order
	order    map[int][]int // messages that succeeded, in order, by Kafka partition (-1: others)
	blocked  chan struct{} // closed when a batch blocks
	blockOne sync.Once
}

func newTestFunction() *testFunction {
	return &testFunction{tries: map[int]int{}, ok: map[int]bool{}, order: map[int][]int{}, blocked: make(chan struct{})}
}

func (f *testFunction) InvokeFor(ctx context.Context, fn model.Function, trigger, label string, event []byte) (worker.Result, error) {
	var ev struct {
		Records []struct {
			MessageID string          `json:"messageId"`
			Partition *int            `json:"partition"`
			Body      json.RawMessage `json:"body"`
		}
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		return worker.Result{}, fmt.Errorf("the test function got an event it cannot read: %v", err)
	}
	var failures []map[string]string
	var ns []int
	crash, block := false, false
	f.mu.Lock()
	for _, r := range ev.Records {
		var b body
		if err := json.Unmarshal(r.Body, &b); err != nil {
			f.mu.Unlock()
			return worker.Result{Response: python.Response{ErrorType: "BadRecord", Payload: []byte(`{}`)}}, nil
		}
		ns = append(ns, b.N)
		f.tries[b.N]++
		switch {
		case b.Poison, b.Flaky && f.tries[b.N] == 1:
			failures = append(failures, map[string]string{"itemIdentifier": r.MessageID})
		case b.Crash && f.tries[b.N] == 1:
			crash = true
		case b.Block && f.tries[b.N] == 1:
			block = true
		}
	}
	f.batches = append(f.batches, ns)
	if os.Getenv("NIMBUS_TEST_LOG") != "" {
		fmt.Fprintf(os.Stderr, "test function: batch %v\n", ns)
	}
	f.mu.Unlock()
	if block {
		f.blockOne.Do(func() { close(f.blocked) })
		<-ctx.Done()
		return worker.Result{}, ctx.Err()
	}
	if crash {
		return worker.Result{Response: python.Response{ErrorType: "Crash", Payload: []byte(`{"errorType":"Crash"}`)}}, nil
	}
	failed := map[string]bool{}
	for _, x := range failures {
		failed[x["itemIdentifier"]] = true
	}
	f.mu.Lock()
	for i, r := range ev.Records {
		if !failed[r.MessageID] {
			f.ok[ns[i]] = true
			p := -1 // a queue's or a subject's one order
			if r.Partition != nil {
				p = *r.Partition
			}
			f.order[p] = append(f.order[p], ns[i])
		}
	}
	f.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"batchItemFailures": failures})
	return worker.Result{Response: python.Response{Payload: out}}, nil
}

// succeeded counts the messages 0..n-1 that succeeded.
func (f *testFunction) succeeded(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := 0
	for i := range n {
		if f.ok[i] {
			k++
		}
	}
	return k
}

func (f *testFunction) triesOf(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[n]
}

// rig is one Raft server holding a function and a mapping, and a
// manager running its consumers as the leader would.
type rig struct {
	t      *testing.T
	cp     *controlplane.Node
	fn     *testFunction
	src    model.Source
	cancel context.CancelFunc
	done   chan struct{}
}

func newRig(t *testing.T, src model.Source) *rig {
	t.Helper()
	c := testcluster.New(t, 1)
	r := &rig{t: t, cp: c.Nodes[0], fn: newTestFunction(), src: src}
	ctx := c.Context(10 * time.Second)
	f := model.Function{FunctionConfig: model.FunctionConfig{Name: "f", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, CodeSHA256: "aa"}
	if _, err := fsm.Apply(ctx, r.cp, fsm.UpsertFunction{Function: f, Now: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if src.Name == "" {
		r.src.Name = "src"
	}
	r.src.Function = "f"
	r.src.Namespace = model.DefaultNamespace
	for k, v := range map[*int]int{&r.src.BatchSize: 10, &r.src.Concurrency: 1} {
		if *k == 0 {
			*k = v
		}
	}
	if r.src.Format == "" {
		r.src.Format = "json"
	}
	if r.src.RetryDelay == 0 {
		r.src.RetryDelay = model.Duration(10 * time.Millisecond)
	}
	if _, err := fsm.Apply(ctx, r.cp, fsm.PutSource{Source: r.src, Now: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	r.startTerm()
	t.Cleanup(r.endTerm)
	return r
}

// startTerm runs a manager, as a new term of office does.
func (r *rig) startTerm() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	var w io.Writer = io.Discard
	if os.Getenv("NIMBUS_TEST_LOG") != "" {
		w = os.Stderr
	}
	m := NewManager(r.cp, r.fn, nil, "s0", slog.New(slog.NewTextHandler(w, nil)))
	go func() { defer close(r.done); m.Run(ctx) }()
}

// endTerm stops the manager and waits for it, as the end of a term does.
func (r *rig) endTerm() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// progress is the mapping's progress as stored.
func (r *rig) progress() model.SourceProgress {
	src, err := r.cp.Store().Source(model.QualifiedName(model.DefaultNamespace, r.src.Name))
	if err != nil {
		r.t.Fatal(err)
	}
	return src.Progress
}

// waitProgress polls the stored progress until cond holds.
func (r *rig) waitProgress(what string, cond func(model.SourceProgress) bool) model.SourceProgress {
	r.t.Helper()
	var p model.SourceProgress
	waitfor.Until(r.t, 60*time.Second, what, func() bool { p = r.progress(); return cond(p) })
	return p
}

// deadLetters are the mapping's dead letters in Nimbus.
func (r *rig) deadLetters() []model.DeadLetter {
	return r.cp.Store().DeadLetters(model.DefaultNamespace, "f")
}
