package pki

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *CA, role Role, name string, hosts ...string) *Identity {
	t.Helper()
	id, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := id.IssueSelf(ca, role, name, hosts); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSignNamesTheIdentityAndVerifiesAgainstItsCA(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	id := issue(t, ca, RoleWorker, "w1", "127.0.0.1", "worker.example")
	_, cert := id.current()
	leaf := cert.Leaf
	if role, name, err := ca.Verify(chainOf(leaf), RoleWorker); err != nil || role != RoleWorker || name != "w1" {
		t.Fatalf("Verify: %v %q %v", role, name, err)
	}
	if _, _, err := ca.Verify(chainOf(leaf), RoleServer); err == nil {
		t.Error("a worker's certificate passed as a server's")
	}
	if _, _, err := other.Verify(chainOf(leaf)); err == nil {
		t.Error("another CA accepted the certificate")
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("worker.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("10.9.9.9"); err == nil {
		t.Error("the certificate is valid for a host it does not name")
	}
	if leaf.PublicKeyAlgorithm.String() != "ECDSA" || ca.Cert.PublicKeyAlgorithm.String() != "ECDSA" {
		t.Errorf("keys: %v, %v", leaf.PublicKeyAlgorithm, ca.Cert.PublicKeyAlgorithm)
	}
}

func TestSignRefusesBadRequests(t *testing.T) {
	ca := newCA(t)
	key, _ := NewKey()
	csr, _ := CSR(key, "x")
	for _, tc := range []struct {
		role Role
		name string
		csr  []byte
	}{
		{"admin", "x", csr},
		{RoleWorker, "", csr},
		{RoleWorker, "a/b", csr},
		{RoleWorker, "x", []byte("not a csr")},
	} {
		if _, err := ca.Sign(tc.csr, tc.role, tc.name, nil); err == nil {
			t.Errorf("Sign(%q, %q) succeeded", tc.role, tc.name)
		}
	}
	noKey := &CA{Cert: ca.Cert, CertPEM: ca.CertPEM}
	if _, err := noKey.Sign(csr, RoleWorker, "x", nil); err == nil {
		t.Error("a CA without its key signed")
	}
}

func TestIdentityPersists(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	id, _ := Load(dir)
	if id.Ready() || id.CA() != nil {
		t.Fatal("an empty directory gave an identity")
	}
	if err := id.IssueSelf(ca, RoleServer, "s1", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if role, name := again.Name(); !again.Ready() || role != RoleServer || name != "s1" {
		t.Fatalf("reloaded: ready %v, %s %s", again.Ready(), role, name)
	}
	if again.CA().Key == nil || again.CA().Fingerprint() != ca.Fingerprint() {
		t.Error("the CA (with its key) did not persist")
	}
	for _, f := range []string{keyFile, caKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st.Mode(), err)
		}
	}
}

// serve runs a mux with an EnrolServer and a TLS echo service on
// ProtoGRPC; it returns the address.
func serve(t *testing.T, id *Identity, auth Authorizer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewMux(ln, id.ServerConfig(true, []string{ProtoGRPC}, RoleServer, RoleWorker), log)
	echo, enrol := m.Listener(ProtoGRPC), m.Listener(ProtoEnrol)
	go m.Serve()
	t.Cleanup(func() { m.Close() })
	go (&EnrolServer{Identity: id, Authorize: auth, Log: log}).Serve(enrol)
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func credential(secret string) Credential {
	sum := sha256.Sum256([]byte(secret))
	return Credential{ID: "tok1", Hash: sum[:]}
}

func authorizeOnly(c Credential, roles ...Role) Authorizer {
	return func(id string, role Role) ([]byte, error) {
		if id != c.ID {
			return nil, errors.New("unknown join token " + id)
		}
		for _, r := range roles {
			if r == role {
				return c.Hash, nil
			}
		}
		return nil, errors.New("not for a " + string(role))
	}
}

func TestEnrolGivesACertificateThatMutualTLSAccepts(t *testing.T) {
	ca := newCA(t)
	server := issue(t, ca, RoleServer, "s1", "127.0.0.1")
	cred := credential("secret-of-the-token")
	addr := serve(t, server, authorizeOnly(cred, RoleWorker, RoleServer))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	key, _ := NewKey()
	gotCA, cert, err := Enrol(ctx, addr, cred, RoleWorker, "w1", []string{"127.0.0.1"}, key)
	if err != nil {
		t.Fatal(err)
	}
	if gotCA.Fingerprint() != ca.Fingerprint() || gotCA.Key != nil {
		t.Fatalf("a worker got CA %s (key %v)", gotCA.Fingerprint(), gotCA.Key != nil)
	}
	worker, _ := Load(t.TempDir())
	if err := worker.Install(gotCA, cert, key); err != nil {
		t.Fatal(err)
	}
	// The worker now talks mutual TLS to the server.
	c, err := tls.Dial("tcp", addr, worker.ClientConfig(ProtoGRPC, RoleServer))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over mutual TLS: %q %v", buf, err)
	}
	c.Close()

	// A server enrolling gets the CA's key too.
	skey, _ := NewKey()
	sca, _, err := Enrol(ctx, addr, cred, RoleServer, "s2", []string{"127.0.0.1"}, skey)
	if err != nil || sca.Key == nil {
		t.Fatalf("server enrolment: %v (key %v)", err, sca != nil && sca.Key != nil)
	}
}

func TestEnrolRefusals(t *testing.T) {
	ca := newCA(t)
	server := issue(t, ca, RoleServer, "s1", "127.0.0.1")
	cred := credential("right")
	addr := serve(t, server, authorizeOnly(cred, RoleWorker))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, _ := NewKey()

	_, _, err := Enrol(ctx, addr, Credential{ID: "nope", Hash: cred.Hash}, RoleWorker, "w1", nil, key)
	if !IsRefused(err) || !strings.Contains(err.Error(), "unknown join token") {
		t.Errorf("unknown credential: %v", err)
	}
	_, _, err = Enrol(ctx, addr, credential("wrong"), RoleWorker, "w1", nil, key)
	if !IsRefused(err) || !strings.Contains(err.Error(), "proof") {
		t.Errorf("wrong secret: %v", err)
	}
	_, _, err = Enrol(ctx, addr, cred, RoleServer, "s2", nil, key)
	if !IsRefused(err) {
		t.Errorf("a worker credential enrolled a server: %v", err)
	}
}

func TestEnrolRefusesAServerThatCannotProveTheCredential(t *testing.T) {
	// An impostor that accepts any credential (it knows a different
	// secret) cannot make the node trust its CA.
	impostor := issue(t, newCA(t), RoleServer, "evil", "127.0.0.1")
	addr := serve(t, impostor, func(string, Role) ([]byte, error) {
		sum := sha256.Sum256([]byte("guess"))
		return sum[:], nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, _ := NewKey()
	_, _, err := Enrol(ctx, addr, credential("the real secret"), RoleWorker, "w1", nil, key)
	if err == nil {
		t.Fatal("enrolled with an impostor")
	}
}

func TestMutualTLSRefusesStrangersAndPlainClients(t *testing.T) {
	ca := newCA(t)
	server := issue(t, ca, RoleServer, "s1", "127.0.0.1")
	addr := serve(t, server, authorizeOnly(credential("x")))
	stranger := issue(t, newCA(t), RoleWorker, "w1", "127.0.0.1")

	try := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping"))
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	}
	// A certificate of another CA: the server refuses it; and the
	// stranger refuses the server's certificate.
	if err := try(stranger.ClientConfig(ProtoGRPC, RoleServer)); err == nil {
		t.Error("a certificate of another CA got through")
	}
	withStrangerCert := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ProtoGRPC},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			_, c := stranger.current()
			return c, nil
		}}
	if err := try(withStrangerCert); err == nil {
		t.Error("the server accepted a certificate of another CA")
	}
	// No certificate at all.
	if err := try(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{ProtoGRPC}}); err == nil {
		t.Error("a TLS client without a certificate got through")
	}
	// Plain TCP.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), "HTTP/1.1 200") {
		t.Errorf("a plain client got an answer: %q", b)
	}
}

func TestHostsOfUnspecifiedAddresses(t *testing.T) {
	h := Hosts("127.0.0.1:8300", "0.0.0.0:8080")
	if len(h) < 2 || h[0] != "127.0.0.1" {
		t.Errorf("Hosts: %v", h)
	}
	for _, x := range h {
		if x == "0.0.0.0" {
			t.Errorf("an unspecified address in %v", h)
		}
	}
}
