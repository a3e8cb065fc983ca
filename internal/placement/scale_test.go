package placement

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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

// BenchmarkPickAmongAThousandWorkers is placement's choice of a worker
// among 1,000 for one invocation (what Invoke does before offering it):
// a function warm on one worker; one warm nowhere, with idle workers;
// the same with every worker half busy but one, the one furthest from
// the function's home (a pass over them all); and the whole ranking,
// which Invoke needs only when the first choice refuses (and which every
// invocation paid for before).
func BenchmarkPickAmongAThousandWorkers(b *testing.B) {
	p := New(thousandWorkers(b))
	warm := model.Function{FunctionConfig: model.FunctionConfig{Name: "f000123", Runtime: "python3.11"}, Namespace: "default", Revision: 1}
	cold := warm
	cold.Name = "never-run"
	pick := func(b *testing.B, p *Placer, fn model.Function) {
		for b.Loop() {
			if order, _ := p.order(fn); len(order) == 0 {
				b.Fatal("no worker picked")
			}
		}
	}
	b.Run("warm", func(b *testing.B) { pick(b, p, warm) })
	b.Run("cold, idle workers", func(b *testing.B) { pick(b, p, cold) })
	b.Run("cold, every worker busy but one", func(b *testing.B) {
		r := thousandWorkers(b)
		last := (homeOf(cold.InstanceKey(), 1000) + 999) % 1000
		for i := range 1000 {
			hb := heartbeatOf(i)
			if i != last {
				hb.InUse = 1
			}
			r.Heartbeat(hb)
		}
		busy := New(r)
		if order, _ := busy.order(cold); order[0].Status().ID != fmt.Sprintf("w%04d", last) {
			b.Fatalf("picked %s, not the idle w%04d", order[0].Status().ID, last)
		}
		pick(b, busy, cold)
	})
	b.Run("whole ranking", func(b *testing.B) {
		for b.Loop() {
			if len(p.rank(warm)) != 1000 {
				b.Fatal("not every worker was ranked")
			}
		}
	})
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

// The registry's quick pick is the first of the full ranking, whatever
// the workers' loads, health, runtimes and idle instances: 200 random
// clusters of 1 to 60 workers, 50 functions each.
func TestTheQuickPickIsTheFirstOfTheRanking(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 22))
	for cluster := range 200 {
		r := NewRegistry(nil, time.Minute, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
		n := 1 + rng.IntN(60)
		for i := range n {
			hb := &rpcpb.WorkerHeartbeat{WorkerId: fmt.Sprintf("w%03d", i), Address: fmt.Sprintf("127.0.0.1:%d", 20000+i),
				Slots: 4, PerServer: true, Runtimes: []string{"python3.11"}, Draining: rng.IntN(8) == 0}
			hb.InUse = int32(rng.IntN(5))
			if rng.IntN(4) == 0 {
				hb.Runtimes = append(hb.Runtimes, "python3.13")
			}
			for f := range 8 {
				if rng.IntN(5) == 0 {
					hb.WarmRevisions = append(hb.WarmRevisions, fmt.Sprintf("default/f%d@1", f))
				}
			}
			r.Heartbeat(hb)
			if rng.IntN(3) == 0 { // a heartbeat that changes what is warm
				hb2 := proto.Clone(hb).(*rpcpb.WorkerHeartbeat)
				hb2.WarmRevisions = hb2.WarmRevisions[:len(hb2.WarmRevisions)/2]
				r.Heartbeat(hb2)
			}
		}
		p := New(r)
		for f := range 50 {
			fn := model.Function{FunctionConfig: model.FunctionConfig{Name: fmt.Sprintf("f%d", f%10)}, Namespace: "default", Revision: 1}
			if f%3 == 0 {
				fn.Runtime = "python3.13"
			}
			order, whole := p.order(fn)
			ranked := p.rank(fn)
			if len(ranked) == 0 {
				if len(order) != 0 {
					t.Fatalf("cluster %d, %s: picked %v where none is eligible", cluster, fn.Name, order[0].Status().ID)
				}
				continue
			}
			if (whole || len(order) != 1) && n > 1 { // one worker is offered all, unranked
				t.Fatalf("cluster %d, %s: the registry's pick was not used (%d targets, whole %v)", cluster, fn.Name, len(order), whole)
			}
			if got, want := order[0].Status().ID, ranked[0].Status().ID; got != want {
				t.Fatalf("cluster %d of %d workers, %s (%s): picked %s, ranking puts %s first", cluster, n, fn.Name, fn.Runtime, got, want)
			}
		}
	}
}
