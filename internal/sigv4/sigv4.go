// Package sigv4 owns AWS Signature Version 4 for requests signed in the
// Authorization header (AWS4-HMAC-SHA256): checking a signed request
// against a secret (Verify) and signing one (Sign). It knows nothing of
// where secrets come from: the caller passes a lookup.
//
// The canonical request is built the way AWS builds it for services other
// than S3, byte for byte as botocore (the AWS CLI and boto3) does: the
// path as sent on the wire, with its dot segments and repeated slashes
// removed, URI-encoded once more (so "my-fn%3A1" is signed as
// "my-fn%253A1"); the query's parameters decoded, re-encoded and sorted;
// the signed headers lower-cased, their values trimmed with inner runs of
// spaces made one. The payload is always signed: Nimbus takes neither
// UNSIGNED-PAYLOAD nor streamed (chunked) payloads, nor presigned URLs.
//
// Usage, in an HTTP handler that has read the body:
//
//	cred, err := sigv4.Verify(r, body, time.Now(), "lambda", secretOf)
//	switch {
//	case errors.Is(err, sigv4.ErrMissing):
//		// not SigV4: try another scheme
//	case err != nil:
//		typ, status := sigv4.AWSError(err)
//		// answer status with typ and err's message
//	}
package sigv4

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm Verify takes.
const Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's time may be from the server's clock,
// either way, as AWS allows.
const MaxSkew = 5 * time.Minute

// TimeFormat is X-Amz-Date's format (ISO 8601 basic, UTC).
const TimeFormat = "20060102T150405Z"

const (
	dateFormat = "20060102"
	terminator = "aws4_request"
	// unsignedPayload and streamingPrefix are X-Amz-Content-Sha256 values
	// that do not sign the body; Verify refuses them.
	unsignedPayload = "UNSIGNED-PAYLOAD"
	streamingPrefix = "STREAMING-"
)

// Credential is the credential scope of a verified request:
// AccessKeyID/Date/Region/Service/aws4_request.
type Credential struct {
	AccessKeyID string
	Date        string // the scope's day, YYYYMMDD
	Region      string // any region: Nimbus has one, whatever clients call it
	Service     string
}

// Verify checks that r, whose body the caller has read into body, is
// signed with AWS Signature Version 4 by the secret secretOf returns for
// the credential's access key id, within MaxSkew of now, for service
// (Nimbus's Lambda API: "lambda"). It returns the credential scope of a
// request that is; otherwise an error wrapping one of ErrMissing,
// ErrMalformed, ErrUnknownKey, ErrExpired or ErrSignature.
//
// r may be a server request (its RequestURI, as received, gives the path
// that was signed) or a client one (its URL's escaped path). "host" must
// be among the signed headers. secretOf reports whether the id is known;
// it is called at most once, after the header, the scope and the time
// have been checked. The signature is compared in constant time.
func Verify(r *http.Request, body []byte, now time.Time, service string, secretOf func(accessKeyID string) (secret string, ok bool)) (Credential, error) {
	a, err := parseAuthorization(r)
	if err != nil {
		return Credential{}, err
	}
	t, stamp, err := requestTime(r)
	if err != nil {
		return Credential{}, err
	}
	c := a.cred
	if c.Date != t.Format(dateFormat) {
		return Credential{}, fmt.Errorf("%w: the credential scope's date %s is not the request's day %s (from %s): sign with the scope of the request's date",
			ErrSignature, c.Date, t.Format(dateFormat), stamp)
	}
	if c.Service != service {
		return Credential{}, fmt.Errorf("%w: the credential is scoped to the service %q, not %q: sign for the service %q",
			ErrSignature, c.Service, service, service)
	}
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		way := "behind"
		if d < 0 {
			way, d = "ahead of", -d
		}
		return Credential{}, fmt.Errorf("%w: the request's time %s is %s %s the server's time %s (at most %s either way is accepted): check the client's clock",
			ErrExpired, t.UTC().Format(TimeFormat), d.Round(time.Second), way, now.UTC().Format(TimeFormat), MaxSkew)
	}
	secret, ok := secretOf(c.AccessKeyID)
	if !ok {
		return Credential{}, fmt.Errorf("%w: no key has the access key id %q: use a Nimbus key's id and its SigV4 secret", ErrUnknownKey, c.AccessKeyID)
	}
	payload, err := payloadHash(r, body)
	if err != nil {
		return Credential{}, err
	}
	creq, err := canonicalRequest(r, a.signedHeaders, payload)
	if err != nil {
		return Credential{}, err
	}
	want := signature(secret, c, stamp, creq)
	got, err := hex.DecodeString(a.signature)
	if err != nil || !hmac.Equal(got, want) {
		return Credential{}, fmt.Errorf("%w: the signature is not the one computed for this request with the secret of %q: check the secret access key and that nothing changed the request after signing",
			ErrSignature, c.AccessKeyID)
	}
	return c, nil
}

// authorization is a parsed Authorization header.
type authorization struct {
	cred          Credential
	signedHeaders []string // lower-case, sorted, without duplicates
	signature     string   // hex
}

// parseAuthorization reads r's Authorization header:
// "AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b;host, Signature=hex".
func parseAuthorization(r *http.Request) (authorization, error) {
	var a authorization
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		q := r.URL.Query()
		if q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") {
			return a, fmt.Errorf("%w: presigned URLs (X-Amz-Signature in the query) are not accepted: sign the Authorization header", ErrMalformed)
		}
		return a, ErrMissing
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.HasPrefix(scheme, "AWS") {
		return a, ErrMissing
	}
	if scheme != Algorithm {
		return a, fmt.Errorf("%w: the algorithm %q is not supported: sign with %s", ErrMalformed, scheme, Algorithm)
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("%w: %q in the Authorization header is not a key=value pair", ErrMalformed, strings.TrimSpace(part))
		}
		if _, dup := params[k]; dup {
			return a, fmt.Errorf("%w: the Authorization header has %s twice", ErrMalformed, k)
		}
		params[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if params[k] == "" {
			return a, fmt.Errorf("%w: the Authorization header needs a %s= parameter", ErrMalformed, k)
		}
	}
	if len(params) != 3 {
		return a, fmt.Errorf("%w: the Authorization header has parameters other than Credential, SignedHeaders and Signature", ErrMalformed)
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 || slices.Contains(scope, "") {
		return a, fmt.Errorf("%w: the credential %q is not ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request", ErrMalformed, params["Credential"])
	}
	if _, err := time.Parse(dateFormat, scope[1]); err != nil {
		return a, fmt.Errorf("%w: the credential's date %q is not YYYYMMDD", ErrMalformed, scope[1])
	}
	if scope[4] != terminator {
		return a, fmt.Errorf("%w: the credential scope ends in %q, not %q", ErrMalformed, scope[4], terminator)
	}
	a.cred = Credential{AccessKeyID: scope[0], Date: scope[1], Region: scope[2], Service: scope[3]}
	a.signedHeaders = strings.Split(params["SignedHeaders"], ";")
	for i, name := range a.signedHeaders {
		if name == "" || name != strings.ToLower(name) || (i > 0 && name <= a.signedHeaders[i-1]) {
			return a, fmt.Errorf("%w: SignedHeaders %q is not a sorted list of distinct lower-case names separated by ';'", ErrMalformed, params["SignedHeaders"])
		}
	}
	if !slices.Contains(a.signedHeaders, "host") {
		return a, fmt.Errorf("%w: the host header must be signed (add host to SignedHeaders)", ErrMalformed)
	}
	a.signature = params["Signature"]
	return a, nil
}

// requestTime returns the request's time from X-Amz-Date or, without it,
// Date, and its ISO 8601 basic form, which the string to sign holds.
func requestTime(r *http.Request) (time.Time, string, error) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, err := time.Parse(TimeFormat, v)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: X-Amz-Date %q is not YYYYMMDD'T'HHMMSS'Z'", ErrMalformed, v)
		}
		return t, v, nil
	}
	v := r.Header.Get("Date")
	if v == "" {
		return time.Time{}, "", fmt.Errorf("%w: the request needs an X-Amz-Date (or Date) header", ErrMalformed)
	}
	t, err := time.Parse(TimeFormat, v)
	if err != nil {
		if t, err = http.ParseTime(v); err != nil {
			return time.Time{}, "", fmt.Errorf("%w: the Date header %q is neither ISO 8601 basic nor an HTTP date", ErrMalformed, v)
		}
	}
	t = t.UTC()
	return t, t.Format(TimeFormat), nil
}

// payloadHash returns the hex SHA-256 of body, refusing an
// X-Amz-Content-Sha256 header that is not that hash.
func payloadHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	v := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case v == "" || v == h:
		return h, nil
	case v == unsignedPayload || strings.HasPrefix(v, streamingPrefix):
		return "", fmt.Errorf("%w: X-Amz-Content-Sha256 %s: unsigned and streamed payloads are not accepted: sign the body", ErrMalformed, v)
	}
	return "", fmt.Errorf("%w: the body's SHA-256 is %s, not X-Amz-Content-Sha256 %s: the body changed after signing", ErrSignature, h, v)
}

// canonicalRequest is SigV4's canonical request of r with the given signed
// headers and payload hash.
func canonicalRequest(r *http.Request, signed []string, payload string) (string, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(rawPath(r)))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String(), nil
}

// rawPath is r's path as it was (or will be) sent: the request target a
// server received, else the URL's escaped path.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// canonicalURI removes p's "." and ".." segments and empty segments (as
// botocore does), then URI-encodes every byte but the unreserved ones and
// '/'. p is already percent-encoded, so its escapes are encoded again.
func canonicalURI(p string) string {
	if p == "" {
		return "/"
	}
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	n := strings.Join(segs, "/")
	if p[0] == '/' {
		n = "/" + n
	}
	if p[len(p)-1] == '/' && len(segs) > 0 {
		n += "/"
	}
	return uriEncode(n, true)
}

// canonicalQuery decodes the raw query's parameters, encodes their names
// and values again and sorts them by name, then value. A '+' is a plus
// sign, not a space (clients that sign encode spaces as %20).
func canonicalQuery(raw string) (string, error) {
	type pair struct{ k, v string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("%w: the query parameter %q has an invalid percent-escape", ErrMalformed, part)
		}
		pairs = append(pairs, pair{uriEncode(dk, false), uriEncode(dv, false)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(strings.Compare(a.k, b.k), strings.Compare(a.v, b.v))
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	return b.String(), nil
}

// headerValue is the canonical value of the header name (lower-case) in
// r: its values trimmed, inner runs of whitespace made one space, joined
// by commas. The host comes from r.Host (or the URL) and a server
// request's Content-Length from r.ContentLength, as Go moves them out of
// r.Header.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		if r.Host != "" {
			return r.Host
		}
		return r.URL.Host
	case "content-length":
		if _, ok := r.Header["Content-Length"]; !ok && r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	}
	var vs []string
	for _, v := range r.Header.Values(name) {
		vs = append(vs, strings.Join(strings.Fields(v), " "))
	}
	return strings.Join(vs, ",")
}

// uriEncode percent-encodes (upper-case hex) every byte of s but
// A-Z a-z 0-9 - _ . ~ and, if keepSlash, '/'.
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' && keepSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// signature is the SigV4 signature of the canonical request creq made at
// stamp (ISO 8601 basic) in the scope c, with secret.
func signature(secret string, c Credential, stamp, creq string) []byte {
	sum := sha256.Sum256([]byte(creq))
	sts := Algorithm + "\n" + stamp + "\n" +
		c.Date + "/" + c.Region + "/" + c.Service + "/" + terminator + "\n" +
		hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+secret), c.Date)
	k = hmacSHA256(k, c.Region)
	k = hmacSHA256(k, c.Service)
	k = hmacSHA256(k, terminator)
	return hmacSHA256(k, sts)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
