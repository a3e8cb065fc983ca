package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// unsignedHeaders are headers Sign leaves out of the signature, as AWS
// SDKs do: proxies and clients may add or change them.
var unsignedHeaders = []string{"authorization", "user-agent", "expect", "x-amzn-trace-id"}

// Sign signs r, whose body is body, with AWS Signature Version 4 as of
// now, for the credential accessKeyID/YYYYMMDD/region/service/aws4_request
// and secret. It sets X-Amz-Date, X-Amz-Content-Sha256 and Authorization,
// signing the host and every header r has then but those above. body must
// be exactly what will be sent. The error is ErrMalformed for a query with
// an invalid percent-escape; nothing is changed then.
func Sign(r *http.Request, body []byte, accessKeyID, secret, region, service string, now time.Time) error {
	if _, err := canonicalQuery(r.URL.RawQuery); err != nil {
		return err
	}
	now = now.UTC()
	stamp := now.Format(TimeFormat)
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	r.Header.Set("X-Amz-Date", stamp)
	r.Header.Set("X-Amz-Content-Sha256", payload)
	signed := []string{"host"}
	for name := range r.Header {
		l := strings.ToLower(name)
		if !slices.Contains(unsignedHeaders, l) && !slices.Contains(signed, l) {
			signed = append(signed, l)
		}
	}
	slices.Sort(signed)
	c := Credential{AccessKeyID: accessKeyID, Date: now.Format(dateFormat), Region: region, Service: service}
	creq, err := canonicalRequest(r, signed, payload)
	if err != nil {
		return err
	}
	sig := signature(secret, c, stamp, creq)
	r.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s/%s/%s/%s, SignedHeaders=%s, Signature=%s",
		Algorithm, accessKeyID, c.Date, region, service, terminator, strings.Join(signed, ";"), hex.EncodeToString(sig)))
	return nil
}
