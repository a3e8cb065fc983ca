// Package pki is the cluster's certificate authority: a CA made once per
// cluster (ECDSA P-256), the leaf certificates it signs for servers and
// workers, and the checks that peers of internal traffic make of each
// other. A node's identity is a URI SAN nimbus://ROLE/NAME.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// Role is what a certificate's holder is in the cluster.
type Role string

// The roles of internal traffic.
const (
	RoleServer Role = "server"
	RoleWorker Role = "worker"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	uriScheme    = "nimbus"
)

// CA is a cluster certificate authority. Key is nil where only the
// certificate is known (on workers).
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA certificate and key for a new cluster.
func NewCA() (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 4)
	rand.Read(id)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Nimbus cluster CA " + hex.EncodeToString(id), Organization: []string{"Nimbus"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return ParseCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), mustKeyPEM(key))
}

// ParseCA reads a CA certificate and, when keyPEM is not empty, its key,
// which must match the certificate.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	ca := &CA{Cert: cert, CertPEM: certPEM}
	if len(keyPEM) > 0 {
		key, err := ParseKey(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("CA key: %w", err)
		}
		if !key.PublicKey.Equal(cert.PublicKey) {
			return nil, errors.New("CA key does not match the CA certificate")
		}
		ca.Key = key
	}
	return ca, nil
}

// Fingerprint is the SHA-256 of the CA certificate, hex.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// KeyPEM is the CA key in PEM (nil without a key).
func (ca *CA) KeyPEM() []byte {
	if ca.Key == nil {
		return nil
	}
	return mustKeyPEM(ca.Key)
}

// Pool is a certificate pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Sign issues a leaf certificate for the key of a certificate request.
// The identity (role, name) and the hosts (DNS names or IPs) are the
// caller's to decide; of the request only its key, whose signature is
// checked, is used. The certificate serves as both client and server.
func (ca *CA) Sign(csrPEM []byte, role Role, name string, hosts []string) ([]byte, error) {
	if ca.Key == nil {
		return nil, errors.New("this node holds no CA key")
	}
	if err := checkName(role, name); err != nil {
		return nil, err
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("certificate request: not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("certificate request: the key must be ECDSA")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: string(role) + "/" + name, Organization: []string{"Nimbus"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{{Scheme: uriScheme, Host: string(role), Path: "/" + name}},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// checkName refuses names that cannot be a path segment.
func checkName(role Role, name string) error {
	if role != RoleServer && role != RoleWorker {
		return fmt.Errorf("unknown role %q", role)
	}
	if name == "" || len(name) > 128 || strings.ContainsAny(name, "/ \t\n?#%") {
		return fmt.Errorf("bad %s name %q", role, name)
	}
	return nil
}

// IdentityOf reads the role and name a leaf certificate was issued for.
func IdentityOf(cert *x509.Certificate) (Role, string, bool) {
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		role, name := Role(u.Host), strings.TrimPrefix(u.Path, "/")
		if checkName(role, name) == nil {
			return role, name, true
		}
	}
	return "", "", false
}

// Verify checks that chain[0] was issued by ca, is valid now, and names
// one of the roles in want (any role if want is empty). It returns the
// certificate's identity.
func (ca *CA) Verify(chain []*x509.Certificate, want ...Role) (Role, string, error) {
	if len(chain) == 0 {
		return "", "", errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", "", fmt.Errorf("certificate not issued by this cluster's CA: %w", err)
	}
	role, name, ok := IdentityOf(chain[0])
	if !ok {
		return "", "", errors.New("certificate names no Nimbus identity")
	}
	if len(want) == 0 {
		return role, name, nil
	}
	for _, w := range want {
		if role == w {
			return role, name, nil
		}
	}
	return "", "", fmt.Errorf("certificate of a %s (%s), want %v", role, name, want)
}

// NewKey makes an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// CSR makes a certificate request for key (the identity is decided by
// the signer; the request only proves possession of the key).
func CSR(key *ecdsa.PrivateKey, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// KeyPEM encodes key.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func mustKeyPEM(key *ecdsa.PrivateKey) []byte {
	b, err := KeyPEM(key)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return b
}

// ParseKey decodes an EC PRIVATE KEY (SEC 1) or PKCS #8 ECDSA key.
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("the key is not ECDSA")
	}
	return ek, nil
}

// ParseCert decodes one PEM certificate.
func ParseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func serial() *big.Int {
	s, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return s
}

func chainOf(certs ...*x509.Certificate) []*x509.Certificate { return certs }
