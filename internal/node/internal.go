package node

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/auth"
	"nimbus/internal/pki"
	"nimbus/internal/state"
)

// raftStream is Raft's stream layer over mutual TLS: connections arrive
// through the internal port's mux (ALPN nimbus-raft) and must carry a
// server certificate of the cluster CA; dialing presents this server's.
type raftStream struct {
	net.Listener // the mux's nimbus-raft listener
	advertise    net.Addr
	id           *pki.Identity
	log          *slog.Logger
}

func (s *raftStream) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*tls.Conn)
		if ok {
			if ca := s.id.CA(); ca != nil {
				if _, _, err := ca.Verify(tc.ConnectionState().PeerCertificates, pki.RoleServer); err == nil {
					return c, nil
				} else {
					s.log.Warn("raft connection refused", "remote", c.RemoteAddr(), "err", err)
				}
			}
		}
		c.Close()
	}
}

func (s *raftStream) Addr() net.Addr { return s.advertise }

func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := s.id.ClientConfig(pki.ProtoRaft, pki.RoleServer)
	if host, _, err := net.SplitHostPort(string(address)); err == nil {
		cfg.ServerName = host
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), cfg)
}

// serverHealth is what a server says of itself in /healthz: enough for a
// new node to find its internal port and to know whether it has state
// and a CA.
type serverHealth struct {
	ID           string `json:"id"`
	Internal     string `json:"internal"`
	Bootstrapped bool   `json:"bootstrapped"`
	CA           string `json:"ca,omitempty"` // fingerprint of its cluster CA
}

// discover reads a server's /healthz at its API address. With tlsCfg
// nil the API is plain HTTP. The answer is not trusted for anything but
// where to go next: enrolment and mutual TLS authenticate the server.
func discover(ctx context.Context, apiAddr string, tlsCfg *tls.Config) (serverHealth, error) {
	scheme := "http"
	hc := &http.Client{Timeout: 3 * time.Second}
	if tlsCfg != nil {
		scheme = "https"
		hc.Transport = &http.Transport{TLSClientConfig: tlsCfg}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+apiAddr+"/healthz", nil)
	if err != nil {
		return serverHealth{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return serverHealth{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string        `json:"status"`
		Server *serverHealth `json:"server"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return serverHealth{}, fmt.Errorf("%s/healthz: %w", apiAddr, err)
	}
	if body.Server == nil && body.Status == "starting" { // see gateway.Starting
		return serverHealth{}, fmt.Errorf("%s is starting (loading its state); retry shortly", apiAddr)
	}
	if body.Server == nil || body.Server.Internal == "" {
		return serverHealth{}, fmt.Errorf("%s is not a Nimbus server of a cluster", apiAddr)
	}
	return *body.Server, nil
}

// discoveryTLS is how a node reads other servers' /healthz when the API
// is served over TLS: the answer is only a pointer to the internal port
// (see discover), so the API certificate need not be verified for it.
func discoveryTLS(apiTLS bool) *tls.Config {
	if !apiTLS {
		return nil
	}
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

// credentialOf turns a join token or API key into what enrolment proves.
func credentialOf(token string) (pki.Credential, error) {
	id, secret, err := auth.ParseToken(strings.TrimSpace(token))
	if err != nil {
		return pki.Credential{}, fmt.Errorf("join token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	return pki.Credential{ID: id, Hash: sum[:]}, nil
}

// enrolAuthorizer decides which credentials may enrol which nodes: the
// cluster's bootstrap key (the shared --bootstrap-token-file) any node, a
// server join token a server or a worker, a worker join token or an
// admin or worker API key a worker. Expired or unknown credentials are
// refused, saying which.
func enrolAuthorizer(store *state.Store, bootstrap string) pki.Authorizer {
	var boot pki.Credential
	if bootstrap != "" {
		boot, _ = credentialOf(bootstrap)
	}
	return func(id string, role pki.Role) ([]byte, error) {
		if boot.ID != "" && id == boot.ID {
			return boot.Hash, nil
		}
		key, err := store.Key(id)
		if err != nil {
			return nil, fmt.Errorf("unknown join token %s (never made, revoked, or of another cluster)", id)
		}
		if !key.ExpiresAt.IsZero() && time.Now().After(key.ExpiresAt) {
			return nil, fmt.Errorf("join token %s expired at %s", id, key.ExpiresAt.UTC().Format(time.RFC3339))
		}
		ok := false
		switch key.Role {
		case auth.RoleJoinServer:
			ok = true
		case auth.RoleJoinWorker, auth.RoleAdmin, auth.RoleWorker:
			ok = role == pki.RoleWorker
		}
		if !ok {
			return nil, fmt.Errorf("a %s credential may not enrol a %s", key.Role, role)
		}
		hash, err := hex.DecodeString(key.SecretHash)
		if err != nil {
			return nil, errors.New("the credential's stored hash is damaged")
		}
		return hash, nil
	}
}
