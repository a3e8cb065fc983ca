package benchmark

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/codepkg"
	"nimbus/internal/gateway"
	"nimbus/internal/sigv4"
	"nimbus/pkg/client"
)

// Issue 21's keys, AWS compatibility: the Lambda API's Invoke under the
// throughput phase's load, and a custom runtime's warm invoke.

// LambdaResult is the no-op function's throughput through the Lambda
// API's Invoke (POST /2015-03-31/functions/NAME/invocations), every
// request signed with SigV4 by the run's key, measured right after
// throughput_rps with the same load (clients, duration), and its ratio
// to throughput_rps. Absent when the run's key has no AWS credentials
// (Report.LambdaSkipped says why).
type LambdaResult struct {
	LambdaThroughputRPS   float64 `json:"lambda_throughput_rps"`
	LambdaThroughputRatio float64 `json:"lambda_throughput_ratio"`
}

// CustomResult is the warm invoke p50 of a `runtime: provided` function
// whose bootstrap answers {} at once, invoked in rounds with the no-op
// Python function, and its ratio to warm_p50_ms. Absent when it could
// not be measured (Report.CustomSkipped says why).
type CustomResult struct {
	CustomWarmP50MS float64 `json:"custom_warm_p50_ms"`
	CustomWarmRatio float64 `json:"custom_warm_ratio"`
}

// Issue 21's goals.
const (
	LambdaThroughputGoal = 0.8 // lambda_throughput_ratio at least
	CustomWarmGoal       = 2   // custom_warm_ratio at most
)

// lambdaRegion is the region the bench signs for: the server's default
// (any region is accepted; Nimbus has one).
const lambdaRegion = gateway.DefaultLambdaRegion

// lambdaInvoke builds the Lambda API's Invoke of one function, signed
// with SigV4 as boto3 signs it (X-Amz-Date, X-Amz-Content-Sha256 and
// Authorization over the host, Content-Type and those two), as raw
// HTTP/1.1 for the load generator. Safe for concurrent use.
type lambdaInvoke struct {
	host   string // the Host header, as signed
	target string // the request target, escaped
	body   []byte
	id     string // access key id
	secret string
	// last is the request signed for the latest second asked for:
	// X-Amz-Date has a resolution of a second, so a request signed
	// anew within the same second would have the very same bytes.
	last atomic.Pointer[signedRequest]
}

// signedRequest is a request's bytes, signed as of unix second sec.
type signedRequest struct {
	sec int64
	raw []byte
}

// newLambdaInvoke prepares the Invoke of name with body on the server at
// base (http:// or https://, with an optional path prefix), signed with
// the AWS credentials of token (auth.SigV4SecretOfToken): an error when
// token is not a full key.
func newLambdaInvoke(base, token, name string, body []byte) (*lambdaInvoke, error) {
	id, secret, err := auth.SigV4SecretOfToken(token)
	if err != nil {
		return nil, fmt.Errorf("the run's key has no AWS credentials: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("benchmark: server URL %q: %w", base, err)
	}
	return &lambdaInvoke{
		host:   u.Host,
		target: strings.TrimRight(u.EscapedPath(), "/") + "/2015-03-31/functions/" + url.PathEscape(name) + "/invocations",
		body:   body,
		id:     id,
		secret: secret,
	}, nil
}

// request returns the whole request signed as of now (to the second).
func (l *lambdaInvoke) request(now time.Time) ([]byte, error) {
	sec := now.Unix()
	if s := l.last.Load(); s != nil && s.sec == sec {
		return s.raw, nil
	}
	r, err := http.NewRequest(http.MethodPost, "http://"+l.host+l.target, bytes.NewReader(l.body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	if err := sigv4.Sign(r, l.body, l.id, l.secret, lambdaRegion, auth.SigV4Service, time.Unix(sec, 0)); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", l.target, l.host)
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(l.body))
	b.Write(l.body)
	l.last.Store(&signedRequest{sec: sec, raw: b.Bytes()})
	return b.Bytes(), nil
}

// loadTarget is the load generator's target for l on the server at base.
func (l *lambdaInvoke) loadTarget(base string) (*loadTarget, error) {
	t, _, err := newLoadEndpoint(base)
	if err != nil {
		return nil, err
	}
	t.build = func() ([]byte, error) { return l.request(time.Now()) }
	return t, nil
}

// check sends one signed Invoke through a's client and returns an error
// saying what the server answered unless it is a 200 without a function
// error.
func (l *lambdaInvoke) check(ctx context.Context, a *api) error {
	raw, err := l.request(time.Now())
	if err != nil {
		return err
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return err
	}
	u, err := url.Parse(a.base)
	if err != nil {
		return err
	}
	r.URL.Scheme, r.URL.Host, r.RequestURI = u.Scheme, u.Host, ""
	r = r.WithContext(ctx)
	resp, err := a.hc.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	msg.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
		return fmt.Errorf("benchmark: the Lambda API's Invoke answered %d %s", resp.StatusCode, bytes.TrimSpace(msg.Bytes()))
	}
	return nil
}

// runLambdaThroughput has sz.clients connections of the load generator
// invoke name through the Lambda API for sz.throughput, right after the
// throughput phase (its instances are up: no ramp), and sets
// rep.LambdaResult. A key without AWS credentials skips it (reason in
// rep.LambdaSkipped).
func runLambdaThroughput(ctx context.Context, a *api, rep *Report, sz sizes, name string) error {
	l, err := newLambdaInvoke(a.base, a.token, name, []byte("{}"))
	if err != nil {
		rep.LambdaSkipped = err.Error()
		return nil
	}
	if err := l.check(ctx, a); err != nil {
		return err
	}
	t, err := l.loadTarget(a.base)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, sz.throughput)
	defer cancel()
	t0 := time.Now()
	n := load(lctx, t, sz.clients)
	elapsed := time.Since(t0)
	rep.LambdaServed, rep.LambdaRefused, rep.LambdaFailed = n.Served, n.Refused, n.Failed
	rep.LambdaResult = &LambdaResult{LambdaThroughputRPS: round(float64(n.Served) / elapsed.Seconds())}
	return ctx.Err()
}

// The custom runtime's bootstrap. goBootstrapSrc is what Lambda users
// ship (a static Go binary looping on the Runtime API with net/http);
// pyBootstrapSrc stands in where no Go toolchain is found.
const (
	goBootstrapSrc = `// The bench's custom runtime: every event answered with {} at once.
package main

import (
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		resp, err = http.Post(api+id+"/response", "application/json", strings.NewReader("{}"))
		if err != nil {
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
`
	pyBootstrapSrc = `#!/usr/bin/python3
# The bench's custom runtime: every event answered with {} at once.
import http.client, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
api = "/2018-06-01/runtime/invocation/"
while True:
    conn.request("GET", api + "next")
    r = conn.getresponse()
    r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", api + rid + "/response", b"{}", {"Content-Type": "application/json"})
    conn.getresponse().read()
`
)

// bootstrap is the custom function's package, or why there is none.
type bootstrap struct {
	zip  []byte
	kind string // what the bootstrap is, for the report
	skip string // why the custom keys are not measured ("" when zip is set)
}

// goTool finds the go command: on PATH, else in $GOROOT/bin.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no go command on PATH (nor in $GOROOT/bin)")
}

// buildBootstrap builds goBootstrapSrc with the go command, static
// (CGO_ENABLED=0), for Linux on this machine's architecture, and zips it;
// without a go command it zips pyBootstrapSrc instead. A build that
// fails is a bootstrap with a skip reason, not an error.
func buildBootstrap(ctx context.Context) bootstrap {
	goCmd, err := goTool()
	if err != nil {
		zb, err := bootstrapZip([]byte(pyBootstrapSrc))
		if err != nil {
			return bootstrap{skip: err.Error()}
		}
		return bootstrap{zip: zb, kind: "Python bootstrap (no go command found)"}
	}
	tmp, err := os.MkdirTemp("", "nimbus-bench-bootstrap")
	if err != nil {
		return bootstrap{skip: err.Error()}
	}
	defer os.RemoveAll(tmp)
	err = os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module bootstrap\n\ngo 1.22\n"), 0o644)
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "main.go"), []byte(goBootstrapSrc), 0o644)
	}
	if err != nil {
		return bootstrap{skip: err.Error()}
	}
	build := exec.CommandContext(ctx, goCmd, "build", "-ldflags=-s -w", "-o", "bootstrap", ".")
	build.Dir = tmp
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		return bootstrap{skip: fmt.Sprintf("%s build of the Go bootstrap failed: %v: %s", goCmd, err, bytes.TrimSpace(out))}
	}
	bin, err := os.ReadFile(filepath.Join(tmp, "bootstrap"))
	if err == nil {
		var zb []byte
		if zb, err = bootstrapZip(bin); err == nil {
			return bootstrap{zip: zb, kind: "Go bootstrap, static, net/http"}
		}
	}
	return bootstrap{skip: err.Error()}
}

// bootstrapZip is a package holding program as its executable bootstrap.
func bootstrapZip(program []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: codepkg.BootstrapFile, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write(program)
	}
	if err == nil {
		err = zw.Close()
	}
	return buf.Bytes(), err
}

// runCustomWarm deploys the custom function with boot's package, starts
// its instance, then runs unmeasured rounds (at least sz.warmup, for at
// least warmupTime) and sz.warm measured rounds of an invoke of the
// no-op Python function noop and one of the custom function, through
// a's client. It sets rep.CustomResult, or rep.CustomSkipped when the
// custom function cannot be deployed or invoked.
func runCustomWarm(ctx context.Context, a *api, rep *Report, sz sizes, boot bootstrap, prefix, noop string, deployed *[]string) error {
	if boot.skip != "" {
		rep.CustomSkipped = boot.skip
		return nil
	}
	rep.CustomBootstrap = boot.kind
	name := prefix + "-custom"
	cfg := client.FunctionConfig{Name: name, Runtime: codepkg.ProvidedRuntime, Handler: "bench"}
	if _, err := a.deployConfig(ctx, cfg, boot.zip); err != nil {
		rep.CustomSkipped = err.Error()
		return ctx.Err()
	}
	*deployed = append(*deployed, name)
	if _, _, err := a.invoke(ctx, name); err != nil { // the cold start, unmeasured
		rep.CustomSkipped = err.Error()
		return ctx.Err()
	}
	round := func() (py, custom time.Duration, err error) {
		if py, _, err = a.invoke(ctx, noop); err != nil {
			return
		}
		custom, _, err = a.invoke(ctx, name)
		return
	}
	// As in runWarm: long enough for the refill the cold start set going
	// to end.
	for i, t0 := 0, time.Now(); i < sz.warmup || time.Since(t0) < warmupTime; i++ {
		if _, _, err := round(); err != nil {
			return err
		}
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var py, custom []time.Duration
	for range sz.warm {
		p, c, err := round()
		if err != nil {
			return err
		}
		py, custom = append(py, p), append(custom, c)
	}
	rep.CustomResult = &CustomResult{CustomWarmP50MS: percentileMS(custom, 50)}
	rep.CustomBesidePythonP50MS = percentileMS(py, 50)
	return nil
}
