package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"nimbus/internal/model"
	"nimbus/internal/pki"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/waitfor"
	"nimbus/internal/worker"
)

func identity(t *testing.T, ca *pki.CA, role pki.Role, name string) *pki.Identity {
	t.Helper()
	id, err := pki.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := id.IssueSelf(ca, role, name, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// rpcWorker is a worker's RPC server on 127.0.0.1:0 that answers every
// invocation, or holds it until the server stops when hold is set.
type rpcWorker struct {
	rpcpb.UnimplementedWorkerServer
	addr string
	srv  *grpc.Server
	hold chan struct{} // closed once an invocation is held
}

func startWorker(t *testing.T, ca *pki.CA, id string, hold bool) *rpcWorker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ident := identity(t, ca, pki.RoleWorker, id)
	w := &rpcWorker{addr: ln.Addr().String(),
		srv: grpc.NewServer(grpc.Creds(credentials.NewTLS(ident.ServerConfig(false, []string{pki.ProtoGRPC}, pki.RoleServer))))}
	if hold {
		w.hold = make(chan struct{})
	}
	rpcpb.RegisterWorkerServer(w.srv, w)
	go w.srv.Serve(ln)
	t.Cleanup(w.srv.Stop)
	return w
}

func (w *rpcWorker) Invoke(ctx context.Context, req *rpcpb.InvokeRequest) (*rpcpb.InvokeResponse, error) {
	if w.hold != nil {
		close(w.hold)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &rpcpb.InvokeResponse{Payload: []byte(`"ok"`), WorkerId: "w"}, nil
}

func (w *rpcWorker) heartbeat(id string) *rpcpb.WorkerHeartbeat {
	return &rpcpb.WorkerHeartbeat{WorkerId: id, Address: w.addr, Slots: 1, Runtimes: []string{"python3.12"}}
}

func target(t *testing.T, r *Registry, id string) Target {
	t.Helper()
	for _, tg := range r.Targets() {
		if tg.Status().ID == id {
			return tg
		}
	}
	t.Fatalf("worker %s is not in the registry", id)
	return nil
}

func ids(r *Registry) []string {
	var out []string
	for _, tg := range r.Targets() {
		out = append(out, tg.Status().ID)
	}
	return out
}

func testRegistry(t *testing.T, deadAfter, forgetAfter time.Duration) (*Registry, *rpc.Pool, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	pool := rpc.NewPool(identity(t, ca, pki.RoleServer, "s1"))
	t.Cleanup(pool.Close)
	return NewRegistry(pool, deadAfter, forgetAfter, slog.New(slog.NewTextHandler(io.Discard, nil))), pool, ca
}

// A worker restarted 20 times under its ID (at a new address each time,
// as with --listen on port 0) and 20 times under a new ID leaves, once
// the restarted ones have been silent for the forget time, only the live
// worker in the registry, and the RPC pool holds a connection to it
// alone.
func TestRestartedWorkersLeaveTheRegistryAndThePool(t *testing.T) {
	r, pool, ca := testRegistry(t, 100*time.Millisecond, 300*time.Millisecond)
	ctx := t.Context()
	for i := range 20 {
		for _, id := range []string{"same", fmt.Sprintf("new-%02d", i)} {
			w := startWorker(t, ca, id, false)
			hb := w.heartbeat(id)
			hb.WarmRevisions = []string{"default/f@1", id + "@1"}
			r.Heartbeat(hb)
			if _, err := target(t, r, id).Invoke(ctx, req()); err != nil {
				t.Fatalf("restart %d of %s: %v", i, id, err)
			}
			w.srv.Stop()
		}
	}
	live := startWorker(t, ca, "live", false)
	r.Heartbeat(live.heartbeat("live"))
	if _, err := target(t, r, "live").Invoke(ctx, req()); err != nil {
		t.Fatal(err)
	}

	wantConns := []string{string(pki.RoleWorker) + "://" + live.addr}
	var got, conns []string
	if !waitfor.Poll(10*time.Second, func() bool {
		r.Heartbeat(live.heartbeat("live")) // the live worker goes on beating
		got, conns = ids(r), pool.Conns()
		return slices.Equal(got, []string{"live"}) && slices.Equal(conns, wantConns)
	}) {
		t.Fatalf("after the forget time: registry %v, pool %v; want [live] and %v", got, conns, wantConns)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.warmIdx) != 0 { // the live worker has nothing warm
		t.Fatalf("forgotten workers are still listed as warm: %v", r.warmIdx)
	}
}

// Whether a failed call may be tried on another worker comes from gRPC's
// status code and whether the call was given to a connection, not from
// the error's text.
func TestRetrySafetyComesFromTheCallNotItsText(t *testing.T) {
	r, _, ca := testRegistry(t, time.Minute, time.Minute)
	ctx := t.Context()

	t.Run("a worker that refuses connections never got the call", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r.Heartbeat(&rpcpb.WorkerHeartbeat{WorkerId: "gone", Address: addr, Slots: 1})
		if _, err := target(t, r, "gone").Invoke(ctx, req()); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call to a closed port: %v; want ErrUnreachable", err)
		}
	})

	t.Run("a worker lost mid-call may have run it", func(t *testing.T) {
		w := startWorker(t, ca, "lost", true)
		r.Heartbeat(w.heartbeat("lost"))
		go func() {
			<-w.hold
			w.srv.Stop()
		}()
		res, err := target(t, r, "lost").Invoke(ctx, req())
		if err != nil || res.ErrorType != ErrorWorkerLost {
			t.Fatalf("call whose worker stopped mid-call: %+v, %v; want a %s result", res, err, ErrorWorkerLost)
		}
	})
}

// A server counts a worker's busy slots as its own invocations on it now
// plus the others' as of the last heartbeat: an invocation of its own
// that ended frees its slot at once, not when the next heartbeat says so
// (the dispatcher would leave the slot idle meanwhile).
func TestAServersOwnInvocationsFreeTheirSlotsBeforeTheNextHeartbeat(t *testing.T) {
	r, _, ca := testRegistry(t, time.Minute, time.Minute)
	w := startWorker(t, ca, "w", true)
	beat := func(inUse int32) {
		hb := w.heartbeat("w")
		hb.Slots, hb.InUse = 3, inUse
		r.Heartbeat(hb)
	}
	beat(0)
	tg := target(t, r, "w")
	inUse := func() int { return tg.Status().InUse }

	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tg.Invoke(ctx, req())
	}()
	<-w.hold
	if n := inUse(); n != 1 {
		t.Fatalf("with one invocation of this server's running: in use %d; want 1", n)
	}
	beat(2) // the worker counts this server's invocation and another server's
	if n := inUse(); n != 2 {
		t.Fatalf("after a heartbeat saying 2 in use, one of them this server's: in use %d; want 2", n)
	}
	// A worker that knows which server a heartbeat goes to says how many
	// of its in_use are that server's: here none yet (this server's call
	// had not reached it), so both are others' and this one's is a third.
	hb := w.heartbeat("w")
	hb.Slots, hb.InUse, hb.PerServer, hb.InUseByYou = 3, 2, true, 0
	r.Heartbeat(hb)
	if n := inUse(); n != 3 {
		t.Fatalf("after a heartbeat saying 2 in use, none of them this server's: in use %d; want 3", n)
	}
	beat(2)
	cancel()
	<-ended
	if n := inUse(); n != 1 {
		t.Fatalf("after this server's invocation ended: in use %d; want 1 (the other server's), before any heartbeat", n)
	}
	beat(5) // more than its slots: no more than all of them are busy
	if n := inUse(); n != 3 {
		t.Fatalf("after a heartbeat saying 5 of 3 in use: in use %d; want 3", n)
	}
}

// A function's first choice (a worker that says it has an idle instance
// of it) cannot be reached: the invocation goes on to the others, in
// rank's order, and runs on one of them.
func TestWhenTheFirstChoiceCannotBeReachedTheOthersAreTried(t *testing.T) {
	r, _, ca := testRegistry(t, time.Minute, time.Hour)
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := gone.Addr().String()
	gone.Close() // nothing listens there any more
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f", Runtime: "python3.12"}, Namespace: "default", Revision: 3}
	hb := &rpcpb.WorkerHeartbeat{WorkerId: "w-gone", Address: deadAddr, Slots: 1, Runtimes: []string{"python3.12"},
		WarmRevisions: []string{warmKey(fn.InstanceKey(), fn.Revision)}}
	r.Heartbeat(hb)
	for _, id := range []string{"w-a", "w-b"} {
		r.Heartbeat(startWorker(t, ca, id, false).heartbeat(id))
	}
	p := New(r)
	if order, whole := p.order(fn); whole || order[0].Status().ID != "w-gone" {
		t.Fatalf("first choice %s (whole ranking %v), want the warm w-gone alone", order[0].Status().ID, whole)
	}
	res, err := p.Invoke(context.Background(), worker.Request{RequestID: "r1", Function: fn})
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if string(res.Payload) != `"ok"` {
		t.Fatalf("payload %q", res.Payload)
	}
}
