package rpc

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"nimbus/internal/pki"
	"nimbus/internal/rpc/rpcpb"
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

// callerEcho is a worker's RPC server that answers each invocation with
// the role and name of the certificate that called it.
type callerEcho struct {
	rpcpb.UnimplementedWorkerServer
}

func (callerEcho) Invoke(ctx context.Context, _ *rpcpb.InvokeRequest) (*rpcpb.InvokeResponse, error) {
	role, name, ok := Caller(ctx)
	if !ok {
		return &rpcpb.InvokeResponse{Refused: "no caller"}, nil
	}
	return &rpcpb.InvokeResponse{Payload: []byte(string(role) + "/" + name)}, nil
}

// serve starts a mutual-TLS worker server with the identity ident on
// 127.0.0.1:0 that admits callers of role from.
func serve(t *testing.T, ident *pki.Identity, from pki.Role) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ident.ServerConfig(false, []string{pki.ProtoGRPC}, from))))
	rpcpb.RegisterWorkerServer(srv, callerEcho{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// A pool keeps one connection per peer and role, proves who it is to the
// peer (the peer reads the caller's role and name), refuses a peer whose
// certificate names another role than the one asked for, and closes what
// it is told to.
func TestThePoolConnectsByRoleAndClosesWhatItIsTold(t *testing.T) {
	ca, err := pki.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool(identity(t, ca, pki.RoleServer, "s1"))
	t.Cleanup(pool.Close)
	worker := serve(t, identity(t, ca, pki.RoleWorker, "w1"), pki.RoleServer)
	impostor := serve(t, identity(t, ca, pki.RoleServer, "s2"), pki.RoleServer) // a server posing as a worker

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pool.Worker(worker)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Invoke(ctx, &rpcpb.InvokeRequest{RequestId: "r1"})
	if err != nil || string(resp.Payload) != "server/s1" {
		t.Fatalf("the worker saw its caller as %q (%v), want server/s1", resp.GetPayload(), err)
	}
	if again, _ := pool.Worker(worker); again == nil {
		t.Fatal("a second Worker call gave no client")
	}
	if got := pool.Conns(); !slices.Equal(got, []string{"worker://" + worker}) {
		t.Fatalf("conns %v, want one to the worker", got)
	}

	bad, err := pool.Worker(impostor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Invoke(ctx, &rpcpb.InvokeRequest{RequestId: "r2"}); err == nil {
		t.Fatal("a peer whose certificate names a server was accepted as a worker")
	}

	pool.CloseWorker(worker)
	if got := pool.Conns(); !slices.Equal(got, []string{"worker://" + impostor}) {
		t.Fatalf("after CloseWorker: conns %v, want only the impostor's", got)
	}
	pool.Close()
	if got := pool.Conns(); len(got) != 0 {
		t.Fatalf("after Close: conns %v", got)
	}
}
