package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/codepkg"
	"nimbus/internal/sigv4"
)

// The load generator's Lambda requests, sent to a server that checks
// each with sigv4.Verify as the gateway does (the path as received, the
// key's derived secret), are all accepted, for the function's Invoke
// path, scoped to the server's default region and the lambda service,
// with boto3's headers signed.
func TestEveryLambdaInvokeTheLoadSendsVerifies(t *testing.T) {
	token := auth.NewToken()
	id, secret, err := auth.SigV4SecretOfToken(token)
	if err != nil {
		t.Fatal(err)
	}
	const stopAfter = 200
	var n, bad atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cred, err := sigv4.Verify(r, body, time.Now(), auth.SigV4Service, func(got string) (string, bool) { return secret, got == id })
		switch {
		case err != nil:
		case r.Method != http.MethodPost || r.RequestURI != "/prefix/2015-03-31/functions/bench-noop/invocations" || string(body) != "{}":
			err = errors.New("request " + r.Method + " " + r.RequestURI + " " + string(body))
		case cred.Region != "us-east-1" || cred.Service != "lambda":
			err = errors.New("scope " + cred.Region + "/" + cred.Service)
		case !strings.Contains(r.Header.Get("Authorization"), "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,"):
			err = errors.New("Authorization " + r.Header.Get("Authorization"))
		}
		if err != nil {
			bad.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("null"))
		if n.Add(1) >= stopAfter {
			cancel()
		}
	}))
	defer srv.Close()
	l, err := newLambdaInvoke(srv.URL+"/prefix/", token, "bench-noop", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	target, err := l.loadTarget(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	counts := load(ctx, target, 4)
	if bad.Load() > 0 {
		t.Fatalf("%d requests were refused; the first: %v", bad.Load(), firstErr.Load())
	}
	if counts.Served < stopAfter-4 || counts.Failed > 0 {
		t.Errorf("counts %+v after the server accepted %d", counts, n.Load())
	}
}

// The request is signed again when its second changes, and within one
// second it is the same (as a signer's would be: X-Amz-Date counts
// seconds).
func TestALambdaInvokeIsSignedAgainEachSecond(t *testing.T) {
	l, err := newLambdaInvoke("http://127.0.0.1:8080", auth.NewToken(), "f", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 100e6, time.UTC)
	dateOf := func(now time.Time) string {
		raw, err := l.request(now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Get("X-Amz-Date")
	}
	a, b, c := dateOf(t0), dateOf(t0.Add(800*time.Millisecond)), dateOf(t0.Add(time.Second))
	if a != "20261208T100000Z" || b != a || c != "20261208T100001Z" {
		t.Errorf("X-Amz-Date at +0, +0.8 s and +1 s: %s, %s, %s", a, b, c)
	}
}

func TestAKeyWithoutAWSCredentialsHasNoLambdaInvoke(t *testing.T) {
	if _, err := newLambdaInvoke("http://127.0.0.1:8080", "", "f", nil); err == nil {
		t.Error("an empty token signs requests")
	}
}

// Issue 21's keys: their ratios, their JSON keys (numbers, and only when
// measured) and their rows with the goals, or the reason they were
// skipped.
func TestTheCompatKeysAreReportedWithTheirGoals(t *testing.T) {
	rep := &Report{Result: Result{ThroughputRPS: 8000, WarmP50MS: 0.4,
		LambdaResult: &LambdaResult{LambdaThroughputRPS: 7000},
		CustomResult: &CustomResult{CustomWarmP50MS: 1}},
		CustomBootstrap: "Go bootstrap, static, net/http"}
	rep.Ratios()
	if rep.LambdaThroughputRatio != 0.875 || rep.CustomWarmRatio != 2.5 {
		t.Errorf("ratios %v and %v, want 0.875 and 2.5", rep.LambdaThroughputRatio, rep.CustomWarmRatio)
	}
	b, _ := json.Marshal(rep.Result)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lambda_throughput_rps", "lambda_throughput_ratio", "custom_warm_p50_ms", "custom_warm_ratio"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("%s = %#v in %s", k, m[k], b)
		}
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lambda_throughput_rps", "7000 /s", "lambda_throughput_ratio", ">= 0.8 x throughput_rps  met",
		"custom_warm_p50_ms", "1.000 ms (Go bootstrap, static, net/http)", "custom_warm_ratio", "<= 2 x warm_p50  NOT met"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}

	skipped := &Report{LambdaSkipped: "the run's key has no AWS credentials", CustomSkipped: "no go command on PATH"}
	skipped.Ratios()
	b, _ = json.Marshal(skipped.Result)
	if strings.Contains(string(b), "lambda_") || strings.Contains(string(b), "custom_") {
		t.Errorf("keys of phases that did not run: %s", b)
	}
	buf.Reset()
	if err := WriteTable(&buf, skipped); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lambda_throughput_rps", "skipped", "the run's key has no AWS credentials", "custom_warm_p50_ms", "no go command on PATH"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// The bootstraps the bench deploys are packages the provided runtime
// takes: an executable bootstrap at the root. The Go one is built (as a
// run builds it) unless -short.
func TestTheBootstrapPackagesAreProvidedPackages(t *testing.T) {
	py, err := bootstrapZip([]byte(pyBootstrapSrc))
	if err != nil {
		t.Fatal(err)
	}
	if err := codepkg.CheckBootstrap(py); err != nil {
		t.Errorf("the Python bootstrap's package: %v", err)
	}
	if testing.Short() {
		t.Skip("builds the Go bootstrap")
	}
	if _, err := goTool(); err != nil {
		t.Skip(err)
	}
	boot := buildBootstrap(t.Context())
	if boot.skip != "" {
		t.Fatal(boot.skip)
	}
	if err := codepkg.CheckBootstrap(boot.zip); err != nil {
		t.Errorf("the Go bootstrap's package: %v", err)
	}
	if !strings.HasPrefix(boot.kind, "Go bootstrap") {
		t.Errorf("kind %q", boot.kind)
	}
}
