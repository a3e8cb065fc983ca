package testcluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"nimbus/internal/controlplane"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// registryInput is one client operation on the function registry: an
// upsert of name, or a read of its revision.
type registryInput struct {
	write bool
	name  string
}

// registryOutput is what the operation answered: the revision written or
// read (0 for a function that does not exist). unknown marks a write
// whose outcome the client never learnt (an error or a timeout): it may
// have been committed or not.
type registryOutput struct {
	rev     int
	unknown bool
}

// registryModel is the sequential specification of the function registry
// as far as revisions go: an upsert makes the revision one more and
// answers it, a read answers the current revision. Functions are
// independent, so histories are checked per name.
var registryModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byName := map[string][]porcupine.Operation{}
		var names []string
		for _, op := range history {
			name := op.Input.(registryInput).name
			if _, ok := byName[name]; !ok {
				names = append(names, name)
			}
			byName[name] = append(byName[name], op)
		}
		var out [][]porcupine.Operation
		for _, name := range names {
			out = append(out, byName[name])
		}
		return out
	},
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		rev, in, out := state.(int), input.(registryInput), output.(registryOutput)
		if in.write {
			return out.unknown || out.rev == rev+1, rev + 1
		}
		return out.rev == rev, rev
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(registryInput), output.(registryOutput)
		switch {
		case in.write && out.unknown:
			return fmt.Sprintf("upsert(%s) -> ?", in.name)
		case in.write:
			return fmt.Sprintf("upsert(%s) -> %d", in.name, out.rev)
		}
		return fmt.Sprintf("read(%s) -> %d", in.name, out.rev)
	},
}

// history records operations from concurrent clients.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	done  atomic.Int64 // operations that completed with a definite answer
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in registryInput, call int64, out registryOutput) {
	ret := h.now()
	if out.unknown {
		// The write may take effect at any time after its call, or never.
		ret = math.MaxInt64
	} else {
		h.done.Add(1)
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// network says which nodes a test has cut off from the others' API (the
// Control RPC), apart from the Raft transport.
type network struct {
	mu  sync.Mutex
	cut map[int]bool
}

func (n *network) reachable(from, to int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[from] && !n.cut[to]
}

func (n *network) set(i int, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut == nil {
		n.cut = map[int]bool{}
	}
	n.cut[i] = cut
}

func upsert(name string) fsm.UpsertFunction {
	return fsm.UpsertFunction{
		Function: model.Function{FunctionConfig: model.FunctionConfig{Name: name}},
		Now:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// revision reads name's revision from node i's own state (0 if absent).
func revision(c *Cluster, i int, name string) (int, error) {
	f, err := c.Nodes[i].Store().Function(model.QualifiedName("", name))
	if errors.Is(err, state.ErrNotFound) {
		return 0, nil
	}
	return int(f.Revision), err
}

// TestTheFunctionRegistryIsLinearizableUnderPartitions runs concurrent
// clients against three servers for a few seconds, each operation through
// a random server: upserts (forwarded to the leader by followers) and
// consistent reads of a function's revision. Meanwhile the leader and
// random followers are cut off and healed, on the Raft network alone or
// on the API network as well. The recorded history must be linearizable
// against registryModel. Upserts refused before they reached the log
// (ErrNotLeader alone) and failed reads had no effect and are left out;
// other failed upserts count as possibly applied.
func TestTheFunctionRegistryIsLinearizableUnderPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster under faults for several seconds")
	}
	const (
		clients  = 10
		workload = 4 * time.Second
		// opTime bounds each operation: one sent to a node cut off from
		// the leader times out rather than holding its client for the
		// five seconds a server would wait for a leader.
		opTime = 300 * time.Millisecond
	)
	names := []string{"alpha", "beta", "gamma"}
	c := New(t, 3)
	var net network
	h := &history{start: time.Now()}
	stop := make(chan struct{})
	var followerReads atomic.Int64

	var wg sync.WaitGroup
	for id := 0; id < clients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				node := rng.IntN(len(c.Nodes))
				in := registryInput{write: rng.IntN(2) == 0, name: names[rng.IntN(len(names))]}
				leader := c.LeaderLink(node, net.reachable)
				ctx, cancel := context.WithTimeout(context.Background(), opTime)
				call := h.now()
				if in.write {
					res, err := fsm.Apply(ctx, c.Nodes[node].Via(leader), upsert(in.name))
					switch {
					case errors.Is(err, controlplane.ErrNotLeader) && !errors.Is(err, controlplane.ErrOutcomeUnknown):
						// Refused before it reached the log: no effect.
					case err != nil:
						h.add(id, in, call, registryOutput{unknown: true})
					default:
						h.add(id, in, call, registryOutput{rev: int(res.Function.Revision)})
					}
				} else if err := c.Nodes[node].ConsistentReadVia(ctx, leader); err == nil {
					// A read that fails has no effect and is left out.
					wasLeader := c.Nodes[node].IsLeader()
					rev, err := revision(c, node, in.name)
					if err != nil {
						t.Error(err)
					}
					h.add(id, in, call, registryOutput{rev: rev})
					if !wasLeader {
						followerReads.Add(1)
					}
				}
				cancel()
			}
		}()
	}

	// Faults: each round cuts one node off, waits until the cluster has
	// made progress without it (a new leader, if it led), then heals and
	// waits for progress again. Rounds start until the workload's time is
	// up, and at least two run (a slow machine elects slowly), within
	// twice that time.
	faults := 0
	soft, deadline := time.Now().Add(workload), time.Now().Add(2*workload)
	progress := func(n int64, cond func() bool) {
		base := h.done.Load()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) && (h.done.Load() < base+n || (cond != nil && !cond())) {
			<-tick.C
		}
	}
	progress(100, nil)
	for round := 0; time.Now().Before(soft) || faults < 2 && time.Now().Before(deadline); round++ {
		victim := c.Leader(nil)
		if victim < 0 || round%2 == 1 {
			victim = rand.IntN(len(c.Nodes))
		}
		apiToo := round%4 < 2
		c.Isolate(victim)
		if apiToo {
			net.set(victim, true)
		}
		faults++
		progress(30, func() bool { return c.Leader(map[int]bool{victim: true}) >= 0 })
		c.Heal()
		net.set(victim, false)
		progress(30, nil)
	}
	close(stop)
	wg.Wait()

	h.mu.Lock()
	ops := h.ops
	h.mu.Unlock()
	var writes, unknown, reads int
	for _, op := range ops {
		switch {
		case op.Output.(registryOutput).unknown:
			unknown++
		case op.Input.(registryInput).write:
			writes++
		default:
			reads++
		}
	}
	t.Logf("%d faults; %d operations: %d upserts, %d with unknown outcome, %d consistent reads (%d on followers)",
		faults, len(ops), writes, unknown, reads, followerReads.Load())
	if writes < 50 || reads < 50 || followerReads.Load() < 10 || faults < 2 {
		t.Fatalf("the workload was too thin to say anything")
	}

	checkStart := time.Now()
	res := porcupine.CheckOperationsTimeout(registryModel, ops, 20*time.Second)
	t.Logf("porcupine: %s in %v", res, time.Since(checkStart).Round(time.Millisecond))
	if res != porcupine.Ok {
		t.Fatalf("the history is not linearizable (%s)", res)
	}
}

// TestTheRegistryModelRejectsNonLinearizableHistories shows that the
// checker used above can fail: hand-written histories with a stale read
// are rejected, their linearizable neighbours accepted.
func TestTheRegistryModelRejectsNonLinearizableHistories(t *testing.T) {
	w := func(client int, call, ret int64, rev int) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: registryInput{write: true, name: "f"}, Call: call, Return: ret, Output: registryOutput{rev: rev}}
	}
	lost := func(client int, call int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: registryInput{write: true, name: "f"}, Call: call, Return: math.MaxInt64, Output: registryOutput{unknown: true}}
	}
	r := func(client int, call, ret int64, rev int) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: registryInput{name: "f"}, Call: call, Return: ret, Output: registryOutput{rev: rev}}
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"a read after an acknowledged write sees it", []porcupine.Operation{w(0, 0, 10, 1), r(1, 20, 30, 1)}, porcupine.Ok},
		{"a read after an acknowledged write that misses it is stale", []porcupine.Operation{w(0, 0, 10, 1), r(1, 20, 30, 0)}, porcupine.Illegal},
		{"a read concurrent with a write may miss it", []porcupine.Operation{w(0, 0, 30, 1), r(1, 10, 20, 0)}, porcupine.Ok},
		{"two upserts cannot both make revision 1", []porcupine.Operation{w(0, 0, 10, 1), w(1, 20, 30, 1)}, porcupine.Illegal},
		{"a write with unknown outcome may never apply", []porcupine.Operation{lost(0, 0), r(1, 20, 30, 0)}, porcupine.Ok},
		{"a write with unknown outcome may apply late", []porcupine.Operation{lost(0, 0), r(1, 20, 30, 0), r(1, 40, 50, 1)}, porcupine.Ok},
		{"once seen, a write with unknown outcome cannot be unseen", []porcupine.Operation{lost(0, 0), r(1, 20, 30, 1), r(2, 40, 50, 0)}, porcupine.Illegal},
		{"a stale read on one function is caught among others", []porcupine.Operation{
			w(0, 0, 10, 1), r(1, 20, 30, 1),
			{ClientId: 2, Input: registryInput{write: true, name: "g"}, Call: 0, Return: 10, Output: registryOutput{rev: 1}},
			{ClientId: 3, Input: registryInput{name: "g"}, Call: 20, Return: 30, Output: registryOutput{rev: 0}},
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(registryModel, tt.history, 5*time.Second); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
