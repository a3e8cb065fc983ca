// Package rpc owns Nimbus's internal RPC (proto/nimbus.proto): the
// connections servers and workers keep to each other, the bearer-key
// credentials they carry, and the server side of the Control service.
package rpc

import (
	"context"
	"crypto/tls"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"nimbus/internal/rpc/rpcpb"
)

// WorkerSecretHeader carries, on calls to a worker, the secret that the
// worker announced in its heartbeats; a worker serves no one else.
const WorkerSecretHeader = "x-nimbus-worker-secret"

// Pool keeps one client connection per address. Safe for concurrent use;
// the zero value is not usable, call NewPool.
type Pool struct {
	token string
	tls   *tls.Config
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewPool returns a pool whose calls carry token as their bearer key,
// over TLS when tlsConfig is not nil (else cleartext HTTP/2).
func NewPool(token string, tlsConfig *tls.Config) *Pool {
	return &Pool{token: token, tls: tlsConfig, conns: map[string]*grpc.ClientConn{}}
}

// SetToken changes the bearer key of later calls.
func (p *Pool) SetToken(token string) {
	p.mu.Lock()
	p.token = token
	p.mu.Unlock()
}

// conn returns the connection to addr, over TLS when useTLS and the pool
// has a TLS config.
func (p *Pool) conn(addr string, useTLS bool) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	creds := insecure.NewCredentials()
	key := "h2c://" + addr
	if useTLS && p.tls != nil {
		creds = credentials.NewTLS(p.tls)
		key = "tls://" + addr
	}
	if c, ok := p.conns[key]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(bearer{p}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	)
	if err != nil {
		return nil, err
	}
	p.conns[key] = c
	return c, nil
}

// Control returns a client of the Control service at addr.
func (p *Pool) Control(addr string) (rpcpb.ControlClient, error) {
	c, err := p.conn(addr, true)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewControlClient(c), nil
}

// Worker returns a client of the Worker service at addr. Workers serve
// cleartext HTTP/2 (their calls are authenticated by the worker's secret;
// TLS for workers' own listener is not built yet).
func (p *Pool) Worker(addr string) (rpcpb.WorkerClient, error) {
	c, err := p.conn(addr, false)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewWorkerClient(c), nil
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

// bearer attaches the pool's key to every call.
type bearer struct{ p *Pool }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	return map[string]string{"authorization": "Bearer " + b.p.token}, nil
}

// RequireTransportSecurity is false: without TLS the key travels in the
// clear (documented; servers take --tls-cert to encrypt).
func (bearer) RequireTransportSecurity() bool { return false }
