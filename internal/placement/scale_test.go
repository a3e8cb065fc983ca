package placement

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/rpc/rpcpb"
)

// thousandWorkers is a registry that has heard from 1,000 workers, each
// with 20 warm revisions, as bench/scale runs them.
func thousandWorkers(tb testing.TB) *Registry {
	tb.Helper()
	r := NewRegistry(nil, time.Minute, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 1000 {
		r.Heartbeat(heartbeatOf(i))
	}
	return r
}

func heartbeatOf(i int) *rpcpb.WorkerHeartbeat {
	var warm []string
	for k := range 20 {
		warm = append(warm, fmt.Sprintf("default/f%06d@1", i*20+k))
	}
	return &rpcpb.WorkerHeartbeat{WorkerId: fmt.Sprintf("w%04d", i), Address: fmt.Sprintf("127.0.0.1:%d", 20000+i),
		Slots: 2, Runtimes: []string{"python3.11"}, WarmRevisions: warm, PerServer: true}
}

// BenchmarkHeartbeatAmongAThousandWorkers is one heartbeat's handling
// on a server that knows 1,000 workers.
func BenchmarkHeartbeatAmongAThousandWorkers(b *testing.B) {
	r := thousandWorkers(b)
	hbs := make([]*rpcpb.WorkerHeartbeat, 1000)
	for i := range hbs {
		hbs[i] = heartbeatOf(i)
	}
	i := 0
	for b.Loop() {
		r.Heartbeat(hbs[i%1000])
		i++
	}
}

// BenchmarkPickAmongAThousandWorkers is placement's ranking of 1,000
// workers for one invocation.
func BenchmarkPickAmongAThousandWorkers(b *testing.B) {
	p := New(thousandWorkers(b))
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f000123", Runtime: "python3.11"}, Namespace: "default", Revision: 1}
	for b.Loop() {
		if len(p.rank(fn)) != 1000 {
			b.Fatal("not every worker was ranked")
		}
	}
}

func TestTheWarmWorkerIsFirstAmongAThousand(t *testing.T) {
	p := New(thousandWorkers(t))
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f012345", Runtime: "python3.11"}, Namespace: "default", Revision: 1}
	order := p.rank(fn)
	if len(order) != 1000 {
		t.Fatalf("%d workers ranked, want 1000", len(order))
	}
	if id := order[0].Status().ID; id != "w0617" { // 12345 / 20
		t.Fatalf("first is %s, want w0617, the one with an idle instance", id)
	}
	// The rest are equally loaded: in the order of their IDs from the
	// function's home on (see rank), w0617 left out.
	wraps := 0
	for i := 2; i < len(order); i++ {
		if prev, id := order[i-1].Status().ID, order[i].Status().ID; id < prev {
			if wraps++; wraps > 1 || prev != "w0999" || id != "w0000" {
				t.Fatalf("position %d: %s after %s", i, id, prev)
			}
		}
	}
}

// Cold starts among idle workers spread over them by function, each
// function going to the same worker every time, rather than all to the
// lowest ID.
func TestColdStartsSpreadByFunctionAmongIdleWorkers(t *testing.T) {
	var src fakeSource
	for i := range 10 {
		src = append(src, &fakeTarget{id: fmt.Sprint("w", i), slots: 4, healthy: true})
	}
	p := New(src)
	homes := map[string]int{}
	for i := range 1000 {
		fn := model.Function{FunctionConfig: model.FunctionConfig{Name: fmt.Sprint("fn-", i)}, Namespace: "default", Revision: 1}
		first := p.rank(fn)[0].Status().ID
		if again := p.rank(fn)[0].Status().ID; again != first {
			t.Fatalf("%s: first %s, then %s", fn.Name, first, again)
		}
		homes[first]++
	}
	if len(homes) != 10 {
		t.Fatalf("1,000 functions' homes are %d of 10 workers: %v", len(homes), homes)
	}
	for id, n := range homes {
		if n > 200 { // 100 each on average
			t.Fatalf("%s is the home of %d of 1,000 functions: %v", id, n, homes)
		}
	}
}

// BenchmarkRuntimesAmongAThousandWorkers is what a deploy asks of
// placement (which runtimes are offered), and the dispatcher's Room.
func BenchmarkRuntimesAmongAThousandWorkers(b *testing.B) {
	p := New(thousandWorkers(b))
	b.Run("Runtimes", func(b *testing.B) {
		for b.Loop() {
			if len(p.Runtimes()) != 1 {
				b.Fatal("no runtime")
			}
		}
	})
	b.Run("Room", func(b *testing.B) {
		for b.Loop() {
			if p.Room() != 3000 {
				b.Fatal("wrong room")
			}
		}
	})
}

// statusOnly hides a target's fast paths, so that placement reads it
// through Status, Runtimes and HasWarm alone.
type statusOnly struct{ Target }

type statusSource struct{ r *Registry }

func (s statusSource) Targets() []Target {
	var out []Target
	for _, t := range s.r.Targets() {
		out = append(out, statusOnly{t})
	}
	return out
}

func TestTheFastPathsAgreeWithStatus(t *testing.T) {
	r := thousandWorkers(t)
	for i := range 1000 {
		hb := heartbeatOf(i)
		switch i % 4 {
		case 1:
			hb.Draining = true
		case 2:
			hb.InUse, hb.InUseByYou = 1, 0
			hb.Runtimes = []string{"python3.9", "python3.11"}
		}
		r.Heartbeat(hb)
	}
	fast, slow := New(r), New(statusSource{r})
	if f, s := fmt.Sprint(fast.Runtimes()), fmt.Sprint(slow.Runtimes()); f != s {
		t.Errorf("Runtimes: %s, through Status %s", f, s)
	}
	if f, s := fast.Room(), slow.Room(); f != s {
		t.Errorf("Room: %d, through Status %d", f, s)
	}
	if f, s := fast.Slots(), slow.Slots(); f != s {
		t.Errorf("Slots: %d, through Status %d", f, s)
	}
	for _, name := range []string{"f000123", "f012345", "f099999"} {
		fn := model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.9"}, Namespace: "default", Revision: 1}
		var f, s []string
		for _, t := range fast.rank(fn) {
			f = append(f, t.Status().ID)
		}
		for _, t := range slow.rank(fn) {
			s = append(s, t.Status().ID)
		}
		if fmt.Sprint(f) != fmt.Sprint(s) {
			t.Errorf("rank of %s differs from the one through Status (%d and %d workers)", name, len(f), len(s))
		}
	}
}
