package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// ALPN protocols of the internal port.
const (
	ProtoRaft  = "nimbus-raft"  // Raft's stream layer
	ProtoGRPC  = "h2"           // the Control and Worker services
	ProtoEnrol = "nimbus-enrol" // getting a certificate with a credential
)

// Files of a node's identity, below its directory (DATA/pki).
const (
	caFile    = "ca.pem"
	caKeyFile = "ca-key.pem"
	certFile  = "node.pem"
	keyFile   = "node-key.pem"
)

// Identity is a node's credentials for internal traffic: the cluster CA
// (with its key on servers) and the node's own certificate. It may start
// empty and be filled once (a new node enrols), so TLS configs read it
// at each handshake. Safe for concurrent use.
type Identity struct {
	dir string

	mu   sync.RWMutex
	ca   *CA
	cert *tls.Certificate
	role Role
	name string
	temp *tls.Certificate // presented on enrolment before there is a certificate
}

// Load reads the identity kept in dir, if any; an empty directory gives
// an empty identity.
func Load(dir string) (*Identity, error) {
	id := &Identity{dir: dir}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return nil, err
	}
	caKey, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ca, err := ParseCA(caPEM, caKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if errors.Is(err, os.ErrNotExist) {
		id.ca = ca
		return id, nil
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	if err := id.set(ca, certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return id, nil
}

// set installs a CA and a certificate in memory, after checking that the
// certificate is the CA's and has an identity.
func (id *Identity) set(ca *CA, certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	pair.Certificate = append(pair.Certificate, ca.Cert.Raw)
	pair.Leaf = leaf
	role, name, err := ca.Verify([]*x509.Certificate{leaf})
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	id.mu.Lock()
	id.ca, id.cert, id.role, id.name = ca, &pair, role, name
	id.mu.Unlock()
	return nil
}

// Install writes a CA (with its key, if it has one) and a certificate
// with its key to the identity's directory and starts using them.
func (id *Identity) Install(ca *CA, certPEM []byte, key *ecdsa.PrivateKey) error {
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return err
	}
	if err := id.set(ca, certPEM, keyPEM); err != nil {
		return err
	}
	if err := os.MkdirAll(id.dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{{keyFile, keyPEM, 0o600}, {certFile, certPEM, 0o644}, {caKeyFile, ca.KeyPEM(), 0o600}, {caFile, ca.CertPEM, 0o644}}
	for _, f := range files { // the CA last: Load takes a directory without it for empty
		if f.data == nil {
			continue
		}
		tmp := filepath.Join(id.dir, f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(id.dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// IssueSelf makes a certificate for this node with its own CA (a server
// that holds the CA key) and installs it.
func (id *Identity) IssueSelf(ca *CA, role Role, name string, hosts []string) error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	csr, err := CSR(key, name)
	if err != nil {
		return err
	}
	cert, err := ca.Sign(csr, role, name, hosts)
	if err != nil {
		return err
	}
	return id.Install(ca, cert, key)
}

// CA returns the cluster CA, nil before the node has one.
func (id *Identity) CA() *CA {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.ca
}

// Ready reports whether the node has a certificate.
func (id *Identity) Ready() bool {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cert != nil
}

// Covers reports whether the node's certificate is valid for every one
// of hosts.
func (id *Identity) Covers(hosts []string) bool {
	_, cert := id.current()
	if cert == nil || cert.Leaf == nil {
		return false
	}
	for _, h := range hosts {
		if cert.Leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// Name returns the role and name of the node's certificate.
func (id *Identity) Name() (Role, string) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.role, id.name
}

func (id *Identity) current() (*CA, *tls.Certificate) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.ca, id.cert
}

// tempCert is a throw-away self-signed certificate for the enrolment
// handshake of a node that has none yet (the enrolment protocol does not
// rely on it: both sides prove the credential, bound to the session).
func (id *Identity) tempCert() (*tls.Certificate, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.temp != nil {
		return id.temp, nil
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "nimbus enrolment"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	id.temp = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return id.temp, nil
}

// ServerConfig is the TLS configuration of an internal listener. A client
// that offers ProtoEnrol (and enrol is true) gets a session without a
// client certificate, for the enrolment endpoint only; every other client
// must present a certificate of the cluster CA naming one of the roles
// in from, and gets one of protos.
func (id *Identity) ServerConfig(enrol bool, protos []string, from ...Role) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			ca, cert := id.current()
			if enrol && slices.Contains(hello.SupportedProtos, ProtoEnrol) {
				if cert == nil {
					var err error
					if cert, err = id.tempCert(); err != nil {
						return nil, err
					}
				}
				return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
					NextProtos: []string{ProtoEnrol}}, nil
			}
			if cert == nil {
				return nil, errors.New("this node has no cluster certificate yet")
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    ca.Pool(),
				NextProtos:   protos,
				VerifyConnection: func(cs tls.ConnectionState) error {
					_, _, err := ca.Verify(cs.PeerCertificates, from...)
					return err
				},
			}, nil
		},
	}
}

// ClientConfig is the TLS configuration for dialing a peer that must
// present a certificate of the cluster CA for one of the roles in want,
// valid for the host dialed. The node presents its own certificate.
func (id *Identity) ClientConfig(proto string, want ...Role) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{proto},
		// The chain is verified in VerifyConnection, against the CA the
		// identity holds at the time of the handshake.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			_, cert := id.current()
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, _ := id.current()
			if ca == nil {
				return errors.New("this node has no cluster CA yet")
			}
			if _, _, err := ca.Verify(cs.PeerCertificates, want...); err != nil {
				return err
			}
			if cs.ServerName != "" {
				return cs.PeerCertificates[0].VerifyHostname(cs.ServerName)
			}
			return nil
		},
	}
}

// Hosts returns the hosts of addresses (HOST:PORT) for a certificate's
// names; an unspecified host (0.0.0.0, ::, empty) stands for every
// address of this machine, and the machine's name.
func Hosts(addrs ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		ip := net.ParseIP(host)
		if host != "" && (ip == nil || !ip.IsUnspecified()) {
			add(host)
			continue
		}
		if ifs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range ifs {
				if n, ok := ia.(*net.IPNet); ok {
					add(n.IP.String())
				}
			}
		}
		if name, err := os.Hostname(); err == nil {
			add(name)
		}
		add("localhost")
	}
	return out
}
