package e2e

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSWithASelfSignedCertificate serves the API over TLS; the CLI
// trusts it with --ca, refuses it without, and never sends a key over
// plain http to another machine unless told to.
func TestTLSWithASelfSignedCertificate(t *testing.T) {
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
	old := http.DefaultTransport.(*http.Transport).TLSClientConfig
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the test's own health polling only
	t.Cleanup(func() { http.DefaultTransport.(*http.Transport).TLSClientConfig = old })
	return startDev(t, data, "--tls-self-signed", "--prestart", "0")
}
