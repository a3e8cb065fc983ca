package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSOptions configure HTTPS for the API.
type TLSOptions struct {
	Cert, Key string // PEM files; both or neither
	// SelfSigned makes (once, in DATA/tls) a self-signed certificate for
	// the listen address when no Cert is given.
	SelfSigned bool
	// CA verifies the servers' API certificates where a worker reads
	// their /healthz (worker --tls-ca). Internal traffic does not use it:
	// it is mutual TLS with the cluster CA (internal/pki).
	CA string
}

// Enabled reports whether TLS is asked for.
func (o TLSOptions) Enabled() bool { return o.Cert != "" || o.SelfSigned }

// serverConfig loads (or makes) the certificate. It returns the config
// and the certificate file in use.
func (o TLSOptions) serverConfig(dataDir, listen string) (*tls.Config, string, error) {
	cert, key := o.Cert, o.Key
	if (cert == "") != (key == "") {
		return nil, "", errors.New("--tls-cert and --tls-key go together")
	}
	if cert == "" {
		dir := filepath.Join(dataDir, "tls")
		cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if _, err := os.Stat(cert); errors.Is(err, os.ErrNotExist) {
			if err := selfSign(dir, cert, key, listen); err != nil {
				return nil, "", fmt.Errorf("self-signed certificate: %w", err)
			}
		}
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, "", fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, cert, nil
}

// clientConfig trusts the CA (or the given certificate) for internal RPC.
func (o TLSOptions) clientConfig(certFile string) (*tls.Config, error) {
	ca := o.CA
	if ca == "" {
		ca = certFile
	}
	b, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("TLS CA %s holds no PEM certificate", ca)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// selfSign writes a one-year ECDSA certificate valid for the listen host
// (and localhost) to cert and key (mode 0600).
func selfSign(dir, cert, key, listen string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "nimbus", Organization: []string{"Nimbus (self-signed)"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" && ip == nil {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
