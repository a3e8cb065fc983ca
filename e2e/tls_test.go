package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSWithASelfSignedCertificate serves the API over TLS; the CLI
// trusts it with --ca, refuses it without, and never sends a key over
// plain http to another machine unless told to.
func TestTLSWithASelfSignedCertificate(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDevTLS(t, data)
	ca := filepath.Join(data, "tls", "cert.pem")
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("no self-signed certificate: %v", err)
	}
	if r := n.cli("", "--ca", ca, "ls"); r.code != 0 {
		t.Fatalf("ls over TLS with --ca: %+v", r)
	}
	if r := n.cli("", "ls"); r.code != 3 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("ls over TLS without the CA should fail on the certificate: %+v", r)
	}
	// Plain HTTP to that TLS port is refused by the server.
	resp, err := http.Get(strings.Replace(n.url, "https://", "http://", 1) + "/healthz")
	if err == nil && resp.StatusCode == 200 {
		t.Fatal("the TLS port answered plain HTTP")
	}
	if err == nil {
		resp.Body.Close()
	}
	// The CLI will not send a key in the clear to a non-loopback address.
	r := n.cli("", "--url", "http://192.0.2.1:1", "ls")
	if r.code != 2 || !strings.Contains(r.stderr, "plain http") {
		t.Fatalf("a key over plain http to another host: %+v", r)
	}
}

// startDevTLS starts nimbus dev with a self-signed certificate; the
// harness's own client trusts it.
func startDevTLS(t *testing.T, data string) *devNode {
	t.Helper()
	// The harness's own health polling only; the CLI is what is tested.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return startDevWith(t, hc, data, "--tls-self-signed", "--prestart", "0")
}

// TestTLSWithACertificateOfTheTestsOwnCA serves the API with a
// certificate signed by a CA made here: the CLI trusts it with that CA
// and refuses it with another.
func TestTLSWithACertificateOfTheTestsOwnCA(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	caCert, caKey := makeCA(t, "nimbus test CA")
	other, _ := makeCA(t, "another CA")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caCert.Raw)
	writePEM(t, filepath.Join(dir, "other.pem"), "CERTIFICATE", other.Raw)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nimbus api"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", der)
	kb, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, filepath.Join(dir, "key.pem"), "EC PRIVATE KEY", kb)

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	n := startDevWith(t, hc, t.TempDir(), "--prestart", "0",
		"--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
	if !strings.HasPrefix(n.url, "https://") {
		t.Fatalf("the API is not served over TLS: %s", n.url)
	}
	if r := n.cli("", "--ca", filepath.Join(dir, "ca.pem"), "ls"); r.code != 0 {
		t.Fatalf("ls with the CA: %+v", r)
	}
	if r := n.cli("", "--ca", filepath.Join(dir, "other.pem"), "ls"); r.code != 3 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("ls trusting another CA should fail on the certificate: %+v", r)
	}
}

// makeCA makes a self-signed CA certificate and its key.
func makeCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
