package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"nimbus/pkg/client"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// teapot stands for the gateway: it answers every request 418.
var teapot = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })

func serveStarting(s *Starting, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

func TestAStartingServerAnswersAtOnceThatItIsStarting(t *testing.T) {
	t.Run("readyz is 503 with the reason, without waiting", func(t *testing.T) {
		s := NewStarting(quietLog)
		start := time.Now()
		w := serveStarting(s, "/readyz")
		if took := time.Since(start); took >= startingWait {
			t.Errorf("/readyz took %v: it should not wait for the gateway", took)
		}
		var body readiness
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("/readyz: %q is not JSON", w.Body.String())
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || body.Status != "not ready" ||
			len(body.Reasons) != 1 || body.Reasons[0] != ErrStarting.Error() {
			t.Errorf("/readyz = %d (Retry-After %q) %+v, want 503 not ready, starting", w.Code, w.Header().Get("Retry-After"), body)
		}
	})
	t.Run("healthz is 503 starting, without waiting", func(t *testing.T) {
		w := serveStarting(NewStarting(quietLog), "/healthz")
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusServiceUnavailable || body["status"] != "starting" {
			t.Errorf("/healthz = %d %q, want 503 {status: starting}", w.Code, w.Body.String())
		}
	})
	t.Run("another request waits for the gateway, then is refused with Retry-After", func(t *testing.T) {
		start := time.Now()
		w := serveStarting(NewStarting(quietLog), "/v1/functions")
		if took := time.Since(start); took < startingWait {
			t.Errorf("refused after %v, want a wait of %v first", took, startingWait)
		}
		var body client.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%q is not JSON", w.Body.String())
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" ||
			body.Error.Code != "ServiceUnavailable" || body.Error.Message != ErrStarting.Error() {
			t.Errorf("= %d (Retry-After %q) %+v, want 503 ServiceUnavailable %q", w.Code, w.Header().Get("Retry-After"), body, ErrStarting)
		}
	})
	t.Run("a request waiting when the gateway comes is served by it", func(t *testing.T) {
		s := NewStarting(quietLog)
		got := make(chan int, 1)
		go func() { got <- serveStarting(s, "/v1/functions").Code }()
		s.Serve(teapot)
		if code := <-got; code != http.StatusTeapot {
			t.Errorf("= %d, want the gateway's 418", code)
		}
	})
	t.Run("once served, everything goes to the gateway", func(t *testing.T) {
		s := NewStarting(quietLog)
		s.Serve(teapot)
		s.Serve(http.NotFoundHandler()) // only the first counts
		for _, p := range []string{"/readyz", "/healthz", "/v1/functions"} {
			if w := serveStarting(s, p); w.Code != http.StatusTeapot {
				t.Errorf("%s = %d, want the gateway's 418", p, w.Code)
			}
		}
	})
}
