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
	if id := order[1].Status().ID; id != "w0000" {
		t.Fatalf("second is %s, want w0000 (all equally loaded: by ID)", id)
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
