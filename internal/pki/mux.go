package pki

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Mux serves several protocols on one TLS listener: it completes each
// handshake (with the listener's configuration, which decides who may
// connect) and hands the connection to the listener of the protocol
// negotiated by ALPN. A connection that fails the handshake is closed and
// logged.
type Mux struct {
	ln     net.Listener
	cfg    *tls.Config
	log    *slog.Logger
	protos map[string]*chanListener

	once sync.Once
	done chan struct{}
}

// NewMux wraps ln; call Listener for each protocol, then Serve.
func NewMux(ln net.Listener, cfg *tls.Config, log *slog.Logger) *Mux {
	return &Mux{ln: ln, cfg: cfg, log: log, protos: map[string]*chanListener{}, done: make(chan struct{})}
}

// Listener returns the listener of connections that negotiated proto.
func (m *Mux) Listener(proto string) net.Listener {
	l := &chanListener{addr: m.ln.Addr(), conns: make(chan net.Conn), done: m.done, closed: make(chan struct{})}
	m.protos[proto] = l
	return l
}

// Addr is the address listened on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Serve accepts connections until Close.
func (m *Mux) Serve() error {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go m.handshake(c)
	}
}

func (m *Mux) handshake(c net.Conn) {
	tc := tls.Server(c, m.cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		m.log.Warn("internal connection refused", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	l, ok := m.protos[tc.ConnectionState().NegotiatedProtocol]
	if !ok {
		m.log.Warn("internal connection without a known protocol", "remote", c.RemoteAddr(), "alpn", tc.ConnectionState().NegotiatedProtocol)
		tc.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.closed:
		tc.Close()
	case <-m.done:
		tc.Close()
	}
}

// Close stops the listener and every protocol's.
func (m *Mux) Close() error {
	m.once.Do(func() { close(m.done) })
	return m.ln.Close()
}

type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{} // the mux's
	once   sync.Once
	closed chan struct{} // this listener's
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}
func (l *chanListener) Addr() net.Addr { return l.addr }
