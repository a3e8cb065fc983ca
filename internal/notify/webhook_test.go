package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignatureVerifiesAndTamperingFails(t *testing.T) {
	body := []byte(`{"a":1}`)
	h := Sign("s3cret", time.Unix(1700000000, 0), body)
	if !Verify("s3cret", h, body) {
		t.Fatal("a fresh signature does not verify")
	}
	if Verify("other", h, body) || Verify("s3cret", h, []byte(`{"a":2}`)) {
		t.Fatal("a wrong secret or a changed body verified")
	}
}

func TestDeliverRetriesUntilAccepted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify("k", r.Header.Get(SignatureHeader), body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := (&Deliverer{Backoff: time.Millisecond}).Deliver(context.Background(), srv.URL, "k", []byte(`{}`))
	if d.Err != nil || d.Attempts != 3 || d.Status != http.StatusNoContent {
		t.Fatalf("delivery: %+v", d)
	}
}

func TestDeliverGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	d := (&Deliverer{Attempts: 2, Backoff: time.Millisecond}).Deliver(context.Background(), srv.URL, "k", []byte(`{}`))
	if d.Err == nil || d.Attempts != 2 {
		t.Fatalf("delivery: %+v", d)
	}
}
