// Package notify owns what Nimbus sends out about invocations: signed
// webhook deliveries (destinations of asynchronous invocations) with
// retries.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" of
// "<t>.<body>" under the webhook secret.
const SignatureHeader = "X-Nimbus-Signature"

// Sign returns the signature header value for body at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body; receivers do the same
// (and should also refuse old timestamps).
func Verify(secret, header string, body []byte) bool {
	var ts int64
	var sig string
	if _, err := fmt.Sscanf(header, "t=%d,v1=%s", &ts, &sig); err != nil {
		return false
	}
	want := Sign(secret, time.Unix(ts, 0), body)
	return hmac.Equal([]byte(want), []byte(header))
}

// Delivery is the outcome of delivering one webhook.
type Delivery struct {
	URL      string
	Status   int
	Attempts int
	Err      error
}

func (d Delivery) String() string {
	if d.Err != nil {
		return fmt.Sprintf("failed after %d attempts to %s: %v", d.Attempts, d.URL, d.Err)
	}
	return fmt.Sprintf("delivered to %s (HTTP %d, attempt %d)", d.URL, d.Status, d.Attempts)
}

// Deliverer POSTs signed JSON to URLs, retrying with doubling backoff.
type Deliverer struct {
	Client   *http.Client
	Attempts int           // default 4
	Backoff  time.Duration // first wait, doubling; default 1s
}

// Deliver POSTs body to url until a 2xx answer or the attempts run out.
func (d *Deliverer) Deliver(ctx context.Context, url, secret string, body []byte) Delivery {
	attempts, backoff, hc := d.Attempts, d.Backoff, d.Client
	if attempts <= 0 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	var last Delivery
	for i := 1; i <= attempts; i++ {
		last = Delivery{URL: url, Attempts: i}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			last.Err = err
			return last
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "nimbus-webhooks")
		req.Header.Set(SignatureHeader, Sign(secret, time.Now(), body))
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			last.Status = resp.StatusCode
			if resp.StatusCode/100 == 2 {
				return last
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last.Err = err
		if i == attempts {
			break
		}
		select {
		case <-ctx.Done():
			last.Err = ctx.Err()
			return last
		case <-time.After(backoff << (i - 1)):
		}
	}
	return last
}
