// Package rpc owns Nimbus's internal RPC (proto/nimbus.proto): the
// connections servers and workers keep to each other over mutual TLS
// with certificates of the cluster CA (internal/pki), and the peer
// identity that calls carry.
package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sort"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"nimbus/internal/pki"
	"nimbus/internal/rpc/rpcpb"
)

// WorkerSecretHeader carries, on calls to a worker, the secret that the
// worker announced in its heartbeats (on top of mutual TLS).
const WorkerSecretHeader = "x-nimbus-worker-secret"

// connBuffer is the read and the write buffer of each internal
// connection, at both ends. gRPC's default, 32 KB each, held 128 MB of a
// server's heap with 1,000 workers connected (a connection each way per
// worker: its heartbeats in, invocations out), nearly all of it idle:
// heartbeats are a few hundred bytes, and a large payload only takes
// more reads and writes.
const connBuffer = 8 << 10

// ServerOptions are the gRPC server options of every internal RPC
// server (its connections' buffers).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ReadBufferSize(connBuffer), grpc.WriteBufferSize(connBuffer)}
}

// Pool keeps one client connection per address. Safe for concurrent use;
// the zero value is not usable, call NewPool.
type Pool struct {
	id    *pki.Identity
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewPool returns a pool whose connections are mutual TLS with id's
// certificate, and accept only peers with a certificate of id's CA.
func NewPool(id *pki.Identity) *Pool {
	return &Pool{id: id, conns: map[string]*grpc.ClientConn{}}
}

// conn returns the connection to addr, whose certificate must name the
// role want.
func (p *Pool) conn(addr string, want pki.Role) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := string(want) + "://" + addr
	if c, ok := p.conns[key]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(p.id.ClientConfig(pki.ProtoGRPC, want))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithReadBufferSize(connBuffer), grpc.WithWriteBufferSize(connBuffer),
	)
	if err != nil {
		return nil, err
	}
	p.conns[key] = c
	return c, nil
}

// Control returns a client of the Control service at a server's internal
// address.
func (p *Pool) Control(addr string) (rpcpb.ControlClient, error) {
	c, err := p.conn(addr, pki.RoleServer)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewControlClient(c), nil
}

// Worker returns a client of the Worker service at a worker's address.
func (p *Pool) Worker(addr string) (rpcpb.WorkerClient, error) {
	c, err := p.conn(addr, pki.RoleWorker)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewWorkerClient(c), nil
}

// CloseWorker closes the connection to the worker at addr, if the pool
// holds one: for a worker that is gone. Calls still in flight on it fail;
// a later Worker(addr) dials again.
func (p *Pool) CloseWorker(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := string(pki.RoleWorker) + "://" + addr
	if c, ok := p.conns[key]; ok {
		c.Close()
		delete(p.conns, key)
	}
}

// Conns lists the connections the pool holds, as ROLE://ADDRESS, sorted.
func (p *Pool) Conns() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.conns))
	for k := range p.conns {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		c.Close()
		delete(p.conns, a)
	}
}

// Caller returns the role and name in the verified client certificate of
// an incoming call.
func Caller(ctx context.Context) (pki.Role, string, bool) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", false
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", "", false
	}
	return pki.IdentityOf(info.State.PeerCertificates[0])
}

// Handshaken is the transport credentials of a gRPC server whose
// connections arrive already past their TLS handshake (from a pki.Mux):
// it passes them through and exposes their TLS state to the handlers.
func Handshaken() credentials.TransportCredentials { return handshaken{} }

type handshaken struct{}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("server-side credentials only")
}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("internal RPC needs mutual TLS")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}
func (h handshaken) Clone() credentials.TransportCredentials { return h }
func (handshaken) OverrideServerName(string) error           { return nil }
