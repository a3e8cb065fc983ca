package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// fakeAPI is a stand-in for a Nimbus server: a handful of canned answers
// keyed by the request, and a record of what it was asked. Its zero value
// is ready for use with start.
type fakeAPI struct {
	mu        sync.Mutex
	requests  []*http.Request
	bodies    [][]byte
	functions map[string]client.Function
}

const testToken = "secret-token"

func (f *fakeAPI) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (f *fakeAPI) last() (*http.Request, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return nil, nil
	}
	return f.requests[len(f.requests)-1], f.bodies[len(f.bodies)-1]
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(client.ErrorBody{Error: client.APIError{Code: code, Message: msg}})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, body)
	if f.functions == nil {
		f.functions = map[string]client.Function{
			"hello": {FunctionConfig: client.FunctionConfig{Name: "hello", Handler: "main.handler", MemoryMB: 128, Timeout: client.Duration(3 * time.Second)}, Revision: 2, CodeSHA256: "abc123"},
		}
	}
	f.mu.Unlock()

	if r.Header.Get("Authorization") != "Bearer "+testToken {
		apiError(w, 401, "Unauthorized", "missing or invalid API key")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	switch {
	case r.URL.Path == "/v1/functions" && r.Method == "GET":
		fns := []client.Function{}
		f.mu.Lock()
		for _, fn := range f.functions {
			fns = append(fns, fn)
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"functions": fns})
	case len(parts) == 2 && parts[0] == "functions" && r.Method == "PUT":
		mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "multipart/form-data" {
			apiError(w, 415, "UnsupportedMediaType", "want multipart/form-data")
			return
		}
		var cfg client.FunctionConfig
		var code []byte
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			switch p.FormName() {
			case "config":
				json.Unmarshal(b, &cfg)
			case "code":
				code = b
			}
		}
		fn := client.Function{FunctionConfig: cfg, Revision: 1, CodeSHA256: "sha-of-code", CodeSize: int64(len(code))}
		f.mu.Lock()
		f.functions[cfg.Name] = fn
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(fn)
	case len(parts) >= 2 && parts[0] == "functions" && parts[1] != "hello" && parts[1] != "failing":
		apiError(w, 404, "NotFound", `function "`+parts[1]+`" not found`)
	case len(parts) == 2 && parts[0] == "functions" && r.Method == "GET":
		json.NewEncoder(w).Encode(f.functions[parts[1]])
	case len(parts) == 2 && parts[0] == "functions" && r.Method == "DELETE":
		json.NewEncoder(w).Encode(client.DeletedFunction{Function: f.functions[parts[1]]}) // 200, the deleted function
	case len(parts) == 3 && parts[2] == "invoke":
		w.Header().Set(client.HeaderRequestID, "req-42")
		if r.Header.Get(client.HeaderInvocationType) == "async" {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"request_id":"req-42"}`)
			return
		}
		if r.Header.Get(client.HeaderLogTail) == "true" {
			w.Header().Set(client.HeaderLogResult, base64.StdEncoding.EncodeToString([]byte("START RequestId: req-42\nhi\nEND RequestId: req-42\n")))
		}
		if parts[1] == "failing" {
			w.Header().Set(client.HeaderFunctionError, "Unhandled")
			io.WriteString(w, `{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}`)
			return
		}
		w.Write(body) // echo the event
	case len(parts) == 3 && parts[2] == "logs" && r.URL.Query().Get("follow") == "1":
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": hi\n\nevent: log\ndata: {\"request_id\":\"r1\",\"log\":\"line one\"}\n\nevent: log\ndata: {\"request_id\":\"r2\",\"log\":\"line two\\n\"}\n\n")
	case len(parts) == 3 && parts[2] == "logs":
		io.WriteString(w, `{"logs":[{"request_id":"r1","function":"hello","log":"START RequestId: r1\nhello\n"}]}`)
	case r.URL.Path == "/v1/invocations":
		io.WriteString(w, `{"invocations":[{"id":"inv-1","function":"hello","revision":2,"status":"failed","duration_ms":12.5,"memory_mb":128,"max_memory_mb":30,"error_type":"ValueError"}]}`)
	case r.URL.Path == "/v1/cluster":
		io.WriteString(w, `{"servers":[{"id":"s1","address":"127.0.0.1:8080","raft":"127.0.0.1:9090","role":"leader","term":3,"last_index":77,"healthy":true}],"workers":[{"id":"w1","slots":4,"in_use":1,"healthy":true,"executor":"process"}]}`)
	default:
		apiError(w, 404, "NotFound", "no route "+r.Method+" "+r.URL.Path)
	}
}

// result is what one CLI run produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI with the given environment variables, stdin and
// arguments, in a fresh temporary directory.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(Env{
		Args:       args,
		Stdin:      strings.NewReader(stdin),
		Stdout:     &out,
		Stderr:     &errOut,
		Getenv:     func(k string) string { return env[k] },
		Dir:        t.TempDir(),
		IsTerminal: func(any) bool { return false },
	})
	return result{code, out.String(), errOut.String()}
}

// against returns the environment that points the CLI at url with the
// fake's token.
func against(url string) map[string]string {
	return map[string]string{"NIMBUS_URL": url, "NIMBUS_TOKEN": testToken}
}

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestExitCodes(t *testing.T) {
	f := &fakeAPI{}
	url := f.start(t)
	env := against(url)
	cases := []struct {
		name       string
		env        map[string]string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"a successful invoke exits 0 and prints the result", env, "", []string{"invoke", "hello", "--data", `{"name":"x"}`}, 0, `{"name":"x"}` + "\n", ""},
		{"a function error exits 1 and prints the error JSON", env, "", []string{"invoke", "failing"}, 1, `"errorType":"ValueError"`, ""},
		{"an unknown flag exits 2", env, "", []string{"invoke", "hello", "--bogus"}, 2, "", "unknown flag: --bogus"},
		{"an unknown command exits 2", env, "", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"a missing argument exits 2", env, "", []string{"invoke"}, 2, "", "accepts 1 arg"},
		{"bad --data JSON exits 2", env, "", []string{"invoke", "hello", "--data", "{nope"}, 2, "", "not valid JSON"},
		{"bad JSON on stdin exits 2", env, "nope", []string{"invoke", "hello"}, 2, "", "from stdin is not valid JSON"},
		{"a bad output format exits 2", env, "", []string{"ls", "-o", "yaml"}, 2, "", "-o must be table, json or csv"},
		{"csv is for usage and cost only", env, "", []string{"ls", "-o", "csv"}, 2, "", "-o csv is for nimbus usage and nimbus cost"},
		{"a bad --since exits 2", env, "", []string{"logs", "hello", "--since", "soon"}, 2, "", "invalid argument"},
		{"an unknown function exits 3", env, "", []string{"get", "nope"}, 3, "", `nimbus: function "nope" not found (404 NotFound)`},
		{"a wrong token exits 3", map[string]string{"NIMBUS_URL": url, "NIMBUS_TOKEN": "wrong"}, "", []string{"ls"}, 3, "", "missing or invalid API key (401 Unauthorized)"},
		{"a refused connection exits 3", map[string]string{"NIMBUS_URL": closedURL(t)}, "", []string{"ls"}, 3, "", `connection refused — is "nimbus dev" running?`},
		{"help exits 0", env, "", []string{"--help"}, 0, "Usage:", ""},
		{"version exits 0", env, "", []string{"version"}, 0, "nimbus ", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.env, tc.stdin, tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", r.stdout, tc.wantStdout)
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.wantStderr)
			}
			if tc.wantCode == 3 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("platform error is not one line: %q", r.stderr)
			}
		})
	}
}

func TestInvokeSendsStdinOrAnEmptyObject(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	if r := runCLI(t, env, `{"from":"stdin"}`, "invoke", "hello"); r.code != 0 || r.stdout != `{"from":"stdin"}`+"\n" {
		t.Fatalf("stdin event: %+v", r)
	}
	if r := runCLI(t, env, "", "invoke", "hello"); r.code != 0 || r.stdout != "{}\n" {
		t.Fatalf("empty stdin: %+v", r)
	}
	var out bytes.Buffer
	code := Run(Env{Args: []string{"invoke", "hello"}, Stdin: strings.NewReader("ignored"), Stdout: &out, Stderr: io.Discard,
		Getenv: func(k string) string { return env[k] }, IsTerminal: func(any) bool { return true }})
	if code != 0 || out.String() != "{}\n" {
		t.Fatalf("terminal stdin: exit %d, stdout %q", code, out.String())
	}
}

func TestInvokeReadsDataFromAFile(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	file := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(file, []byte(`{"file":true}`), 0o644)
	if r := runCLI(t, env, "", "invoke", "hello", "--data", "@"+file); r.code != 0 || r.stdout != `{"file":true}`+"\n" {
		t.Fatalf("%+v", r)
	}
}

func TestInvokeAsyncPrintsTheRequestID(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	r := runCLI(t, env, "", "invoke", "hello", "--async")
	if r.code != 0 || r.stdout != "req-42\n" {
		t.Fatalf("%+v", r)
	}
	req, _ := f.last()
	if req.Header.Get(client.HeaderInvocationType) != "async" {
		t.Fatalf("invocation type header %q", req.Header.Get(client.HeaderInvocationType))
	}
	r = runCLI(t, env, "", "invoke", "hello", "--async", "-o", "json")
	var got map[string]string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got["request_id"] != "req-42" {
		t.Fatalf("%+v", r)
	}
}

func TestInvokeTailPrintsTheLogToStderr(t *testing.T) {
	f := &fakeAPI{}
	r := runCLI(t, against(f.start(t)), "", "invoke", "hello", "--tail")
	if r.code != 0 || r.stdout != "{}\n" || r.stderr != "START RequestId: req-42\nhi\nEND RequestId: req-42\n" {
		t.Fatalf("%+v", r)
	}
}

func TestJSONOutputShapes(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	decode := func(args ...string) any {
		t.Helper()
		r := runCLI(t, env, "", append(args, "-o", "json")...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%v: stdout is not JSON: %v\n%s", args, err, r.stdout)
		}
		if !strings.Contains(r.stdout, "\n  ") {
			t.Errorf("%v: JSON is not indented:\n%s", args, r.stdout)
		}
		return v
	}
	if fns, ok := decode("ls").([]any); !ok || len(fns) != 1 || fns[0].(map[string]any)["name"] != "hello" {
		t.Errorf("ls: %v", fns)
	}
	if fn, ok := decode("get", "hello").(map[string]any); !ok || fn["revision"] != 2.0 || fn["timeout"] != "3s" {
		t.Errorf("get: %v", fn)
	}
	if invs, ok := decode("invocations", "hello").([]any); !ok || len(invs) != 1 || invs[0].(map[string]any)["id"] != "inv-1" {
		t.Errorf("invocations: %v", invs)
	}
	if cl, ok := decode("cluster").(map[string]any); !ok || len(cl["servers"].([]any)) != 1 || len(cl["workers"].([]any)) != 1 {
		t.Errorf("cluster: %v", cl)
	}
	if logs, ok := decode("logs", "hello").([]any); !ok || len(logs) != 1 {
		t.Errorf("logs: %v", logs)
	}
	if res, ok := decode("invoke", "hello", "--data", `{"a":[1,2]}`).(map[string]any); !ok || res["a"] == nil {
		t.Errorf("invoke: %v", res)
	}
}

func TestTables(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"ls"}, []string{"NAME", "REVISION", "hello", "128 MB", "3s"}},
		{[]string{"get", "hello"}, []string{"name:", "hello", "code sha256:", "abc123"}},
		{[]string{"invocations"}, []string{"ID", "FUNCTION", "REV", "STATUS", "START", "DURATION", "MEMORY", "ERROR", "inv-1", "failed", "12.5ms", "30/128 MB", "ValueError"}},
		{[]string{"cluster"}, []string{"SERVERS", "leader", "77", "WORKERS", "process", "yes"}},
		{[]string{"rm", "hello"}, []string{"deleted hello"}},
	}
	for _, tc := range cases {
		r := runCLI(t, env, "", tc.args...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", tc.args, r)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, r.stdout)
			}
		}
	}
}

func TestInvocationsPassesItsFilters(t *testing.T) {
	f := &fakeAPI{}
	r := runCLI(t, against(f.start(t)), "", "invocations", "hello", "--status", "failed", "--limit", "5")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	req, _ := f.last()
	if q := req.URL.RawQuery; q != "function=hello&limit=5&status=failed" {
		t.Fatalf("query %q", q)
	}
}

func TestLogs(t *testing.T) {
	f := &fakeAPI{}
	env := against(f.start(t))
	r := runCLI(t, env, "", "logs", "hello", "--request", "r1", "--since", "10m")
	if r.code != 0 || r.stdout != "START RequestId: r1\nhello\n" {
		t.Fatalf("%+v", r)
	}
	req, _ := f.last()
	if q := req.URL.RawQuery; q != "request_id=r1&since=10m0s" {
		t.Fatalf("query %q", q)
	}
	r = runCLI(t, env, "", "logs", "hello", "-f")
	if r.code != 0 || r.stdout != "line one\nline two\n" {
		t.Fatalf("follow: %+v", r)
	}
}

func TestTokenComesFromTheLocalAdminTokenFile(t *testing.T) {
	f := &fakeAPI{}
	url := f.start(t) // httptest listens on 127.0.0.1: a loopback URL
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, ".nimbus"), 0o700)
	os.WriteFile(filepath.Join(dir, ".nimbus", "admin.token"), []byte(testToken+"\n"), 0o600)
	var out, errOut bytes.Buffer
	code := Run(Env{Args: []string{"ls", "--url", url}, Stdout: &out, Stderr: &errOut, Dir: dir})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// An explicit token wins over the file.
	code = Run(Env{Args: []string{"ls", "--url", url, "--token", "wrong"}, Stdout: &out, Stderr: &errOut, Dir: dir})
	if code != 3 {
		t.Fatalf("explicit wrong token: exit %d", code)
	}
}

func TestIsLoopbackURL(t *testing.T) {
	for u, want := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost": true, "http://[::1]:80": true,
		"https://nimbus.example.com": false, "http://10.0.0.1:8080": false,
	} {
		if got := isLoopbackURL(u); got != want {
			t.Errorf("isLoopbackURL(%q) = %v", u, got)
		}
	}
}

// cancelOnWrite cancels a context once something is written to it. It has
// no WriteString, so io.WriteString goes through Write.
type cancelOnWrite struct {
	buf    bytes.Buffer
	cancel func()
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	n, err := c.buf.Write(p)
	c.cancel()
	return n, err
}

func (c *cancelOnWrite) String() string { return c.buf.String() }

func TestLogsFollowStopsCleanlyWhenInterrupted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: log\ndata: {\"log\":\"first\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	var errOut bytes.Buffer
	code := Run(Env{Args: []string{"logs", "hello", "-f", "--url", srv.URL, "--token", "t"},
		Stdout: out, Stderr: &errOut, Context: ctx})
	if code != 0 || out.String() != "first\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
