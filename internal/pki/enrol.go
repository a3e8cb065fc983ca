package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Enrolment: a node without a certificate dials a server's internal port
// with ALPN ProtoEnrol (TLS 1.3, no client certificate) and sends a
// certificate request with the id of a credential (a join token, an API
// key or the cluster's bootstrap key) and a proof that it knows the
// credential: an HMAC, keyed with the SHA-256 of the credential's secret
// (what servers store), over the session's exported keying material
// (RFC 8446 §7.5) and the request. The server answers with the signed
// certificate, the CA (and, for a server, the CA's key) and a proof of
// its own over the same material and the answer. The credential itself
// never crosses the wire, a proof made for one session is worthless in
// another, and a node that cannot prove it knows the credential (a man
// in the middle, a stranger) neither gets a certificate nor gives one.

const ekmLabel = "EXPORTER-nimbus-enrol"

// Credential is what a node enrols with: the public id of a token or
// key and the SHA-256 of its secret.
type Credential struct {
	ID   string
	Hash []byte
}

type enrolRequest struct {
	Credential string   `json:"credential"`
	Role       Role     `json:"role"`
	Name       string   `json:"name"`
	Hosts      []string `json:"hosts"`
	CSR        []byte   `json:"csr"`
	Proof      string   `json:"proof"`
}

type enrolResponse struct {
	Error string `json:"error,omitempty"`
	Retry bool   `json:"retry,omitempty"` // the refusal may pass: try again later
	CA    []byte `json:"ca,omitempty"`
	CAKey []byte `json:"ca_key,omitempty"`
	Cert  []byte `json:"cert,omitempty"`
	Proof string `json:"proof,omitempty"`
}

func mac(key []byte, side string, ekm []byte, fields ...[]byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("nimbus-enrol " + side + "\x00"))
	for _, f := range append([][]byte{ekm}, fields...) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *enrolRequest) fields() [][]byte {
	hosts, _ := json.Marshal(r.Hosts)
	return [][]byte{[]byte(r.Credential), []byte(r.Role), []byte(r.Name), hosts, r.CSR}
}

func (r *enrolResponse) fields() [][]byte { return [][]byte{r.CA, r.CAKey, r.Cert} }

// Authorizer says whether the credential id may enrol a node of role,
// and returns the SHA-256 of its secret. Its error is shown to the
// enrolling node.
type Authorizer func(credentialID string, role Role) ([]byte, error)

// EnrolServer serves enrolment on the sessions of ProtoEnrol: one JSON
// request and one JSON answer per connection.
type EnrolServer struct {
	Identity  *Identity
	Authorize Authorizer
	Log       *slog.Logger
}

// Serve answers enrolments arriving on l (a Mux's ProtoEnrol listener)
// until it is closed.
func (s *EnrolServer) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go s.serve(c)
	}
}

func (s *EnrolServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	var req enrolRequest
	resp := s.answer(tc, &req)
	if resp.Error != "" {
		s.Log.Warn("enrolment refused", "remote", c.RemoteAddr(), "role", req.Role, "name", req.Name, "reason", resp.Error)
	} else {
		s.Log.Info("enrolled", "remote", c.RemoteAddr(), "role", req.Role, "name", req.Name, "credential", req.Credential)
	}
	json.NewEncoder(c).Encode(resp)
}

func (s *EnrolServer) answer(tc *tls.Conn, req *enrolRequest) enrolResponse {
	if err := json.NewDecoder(io.LimitReader(tc, 64<<10)).Decode(req); err != nil {
		return enrolResponse{Error: "bad enrolment request: " + err.Error()}
	}
	if err := checkName(req.Role, req.Name); err != nil {
		return enrolResponse{Error: "bad enrolment request: " + err.Error()}
	}
	if len(req.Hosts) > 64 {
		return enrolResponse{Error: "bad enrolment request: too many hosts"}
	}
	hash, err := s.Authorize(req.Credential, req.Role)
	if err != nil {
		return enrolResponse{Error: err.Error()}
	}
	cs := tc.ConnectionState()
	ekm, err := cs.ExportKeyingMaterial(ekmLabel, nil, 32)
	if err != nil {
		return enrolResponse{Error: err.Error()}
	}
	if !hmac.Equal([]byte(mac(hash, "client", ekm, req.fields()...)), []byte(req.Proof)) {
		return enrolResponse{Error: "the credential's proof does not match: wrong secret"}
	}
	ca := s.Identity.CA()
	if ca == nil || ca.Key == nil {
		return enrolResponse{Error: "this server has no cluster CA yet", Retry: true}
	}
	cert, err := ca.Sign(req.CSR, req.Role, req.Name, req.Hosts)
	if err != nil {
		return enrolResponse{Error: err.Error()}
	}
	resp := enrolResponse{CA: ca.CertPEM, Cert: cert}
	if req.Role == RoleServer {
		resp.CAKey = ca.KeyPEM()
	}
	resp.Proof = mac(hash, "server", ekm, resp.fields()...)
	return resp
}

// Enrol gets a certificate for key from the server whose internal port
// is addr, naming the node role/name and valid for hosts. It returns the
// cluster CA (with its key for a server) and the certificate.
func Enrol(ctx context.Context, addr string, cred Credential, role Role, name string, hosts []string, key *ecdsa.PrivateKey) (*CA, []byte, error) {
	csr, err := CSR(key, name)
	if err != nil {
		return nil, nil, err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ProtoEnrol},
		// The server is authenticated by its proof below, not by its
		// certificate: it may have none of the cluster's yet.
		InsecureSkipVerify: true,
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("enrolment at %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	conn := c.(*tls.Conn)
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ProtoEnrol {
		return nil, nil, fmt.Errorf("enrolment at %s: the server does not enrol nodes", addr)
	}
	ekm, err := cs.ExportKeyingMaterial(ekmLabel, nil, 32)
	if err != nil {
		return nil, nil, err
	}
	req := enrolRequest{Credential: cred.ID, Role: role, Name: name, Hosts: hosts, CSR: csr}
	req.Proof = mac(cred.Hash, "client", ekm, req.fields()...)
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, nil, fmt.Errorf("enrolment at %s: %w", addr, err)
	}
	var resp enrolResponse
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&resp); err != nil {
		return nil, nil, fmt.Errorf("enrolment at %s: %w", addr, err)
	}
	if resp.Error != "" {
		if resp.Retry {
			return nil, nil, fmt.Errorf("enrolment at %s: %s", addr, resp.Error)
		}
		return nil, nil, &RefusedError{Addr: addr, Reason: resp.Error}
	}
	if !hmac.Equal([]byte(mac(cred.Hash, "server", ekm, resp.fields()...)), []byte(resp.Proof)) {
		return nil, nil, fmt.Errorf("enrolment at %s: the server could not prove it knows the credential: not this cluster's server", addr)
	}
	ca, err := ParseCA(resp.CA, resp.CAKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := ParseCert(resp.Cert)
	if err != nil {
		return nil, nil, err
	}
	if got, gotName, err := ca.Verify(chainOf(cert), role); err != nil || got != role || gotName != name || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("enrolment at %s: the certificate received is not the one asked for (%v)", addr, err)
	}
	return ca, resp.Cert, nil
}

// RefusedError is a server's refusal to enrol a node.
type RefusedError struct {
	Addr   string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("enrolment refused by %s: %s", e.Addr, e.Reason)
}

// IsRefused reports whether err is a server's refusal (as opposed to a
// server that could not be reached).
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}
