package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"nimbus/pkg/client"
)

// zipOf builds a zip from name → content; a name ending in "@link" becomes
// a symlink to its content, "@dev" a character device.
func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		switch {
		case strings.HasSuffix(name, "@link"):
			h.Name = strings.TrimSuffix(name, "@link")
			h.SetMode(os.ModeSymlink | 0o777)
		case strings.HasSuffix(name, "@dev"):
			h.Name = strings.TrimSuffix(name, "@dev")
			h.SetMode(os.ModeDevice | os.ModeCharDevice | 0o666)
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const okHandler = "def handler(event, context):\n    return {'ok': True}\n"

// deployJSON deploys through the JSON form of PUT /v1/functions/{name}.
func (n *devNode) deployJSON(name string, cfg map[string]any, code []byte) (int, client.ErrorBody) {
	n.t.Helper()
	body, _ := json.Marshal(map[string]any{"config": cfg, "code_zip_base64": base64.StdEncoding.EncodeToString(code)})
	status, _, b := n.do("PUT", "/v1/functions/"+name, "application/json", bytes.NewReader(body))
	var e client.ErrorBody
	json.Unmarshal(b, &e)
	return status, e
}

func TestBadInputIsRefusedAndLosesNothing(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	good := zipOf(t, map[string]string{"main.py": okHandler})
	if status, e := n.deployJSON("keeper", map[string]any{"name": "keeper"}, good); status != 201 {
		t.Fatalf("deploying the reference function: %d %+v", status, e)
	}
	_, _, before := n.do("GET", "/v1/functions/keeper", "", nil)

	bigEnv := map[string]string{"BIG": strings.Repeat("x", 4097)}
	cases := []struct {
		name       string
		fn         string
		cfg        map[string]any
		code       []byte
		wantStatus int
		wantInMsg  string
	}{
		{"an invalid name", "Bad_Name", map[string]any{}, good, 400, "name"},
		{"a name that disagrees with the path", "keeper", map[string]any{"name": "other"}, good, 400, "does not match"},
		{"an unknown runtime", "keeper", map[string]any{"runtime": "python3.99"}, good, 400, "python3.99"},
		{"memory below the minimum", "keeper", map[string]any{"memory": 64}, good, 400, "memory"},
		{"memory above the maximum", "keeper", map[string]any{"memory": 20000}, good, 400, "memory"},
		{"a timeout above 900s", "keeper", map[string]any{"timeout": "901s"}, good, 400, "timeout"},
		{"a zero timeout spelled as a string", "keeper", map[string]any{"timeout": "0.5s"}, good, 400, "timeout"},
		{"environment over 4 KB", "keeper", map[string]any{"env": bigEnv}, good, 400, "env"},
		{"an unknown config field", "keeper", map[string]any{"memroy": 256}, good, 400, "memroy"},
		{"a corrupt zip", "keeper", map[string]any{}, []byte("PK\x03\x04 this is not a zip"), 400, "zip"},
		{"a zip entry climbing out with ..", "keeper", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler, "../evil.py": "x"}), 400, ".."},
		{"a zip entry with an absolute path", "keeper", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler, "/etc/evil.py": "x"}), 400, "absolute"},
		{"a symlink pointing out of the package", "keeper", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler, "passwd@link": "../../../etc/passwd"}), 400, "symlink"},
		{"a device file", "keeper", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler, "tty@dev": ""}), 400, "device"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, e := n.deployJSON(c.fn, c.cfg, c.code)
			if status != c.wantStatus || !strings.Contains(strings.ToLower(e.Error.Message), strings.ToLower(c.wantInMsg)) {
				t.Fatalf("got %d %q, want %d with %q in the message", status, e.Error.Message, c.wantStatus, c.wantInMsg)
			}
		})
	}

	t.Run("a zip over 50 MB is too large", func(t *testing.T) {
		big := make([]byte, 51<<20)
		rand.Read(big)
		status, e := n.deployJSON("keeper", map[string]any{}, big)
		if status != 413 {
			t.Fatalf("got %d %+v, want 413", status, e)
		}
	})
	t.Run("a deploy that is neither multipart nor JSON is refused", func(t *testing.T) {
		status, _, _ := n.do("PUT", "/v1/functions/keeper", "text/plain", strings.NewReader("hi"))
		if status != 415 {
			t.Fatalf("got %d, want 415", status)
		}
	})
	t.Run("the CLI refuses bad flags locally with exit 2", func(t *testing.T) {
		n.mustCLI(2, "deploy", "../examples/hello", "--memory", "64")
		n.mustCLI(2, "deploy", "../examples/hello", "--name", "Bad_Name")
		n.mustCLI(2, "invoke", "keeper", "--data", "{not json")
		n.mustCLI(2, "invoke")
		n.mustCLI(2, "no-such-command")
	})
	t.Run("the CLI reports a server refusal with exit 3", func(t *testing.T) {
		r := n.mustCLI(3, "deploy", "../examples/hello", "--runtime", "python3.99")
		if !strings.Contains(r.stderr, "python3.99") {
			t.Fatalf("stderr does not name the runtime: %s", r.stderr)
		}
	})

	_, _, after := n.do("GET", "/v1/functions/keeper", "", nil)
	if !bytes.Equal(before, after) {
		t.Fatalf("refused deploys changed the stored function:\nbefore %s\nafter  %s", before, after)
	}
	if status, _, b := n.do("GET", "/v1/functions/Bad_Name", "", nil); status != 404 {
		t.Fatalf("a refused function exists: %d %s", status, b)
	}
}

func TestBadInvocationsAndAuth(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	if status, e := n.deployJSON("ok", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	cases := []struct {
		name       string
		method     string
		path       string
		body       io.Reader
		token      string
		wantStatus int
	}{
		{"a non-JSON event", "POST", "/v1/functions/ok/invoke", strings.NewReader("{nope"), n.token, 400},
		{"an event over 6 MB", "POST", "/v1/functions/ok/invoke", bytes.NewReader(bytes.Repeat([]byte(" "), 6<<20+10)), n.token, 413},
		{"invoking an unknown function", "POST", "/v1/functions/ghost/invoke", strings.NewReader("{}"), n.token, 404},
		{"getting an unknown function", "GET", "/v1/functions/ghost", nil, n.token, 404},
		{"deleting an unknown function", "DELETE", "/v1/functions/ghost", nil, n.token, 404},
		{"an unknown invocation", "GET", "/v1/invocations/ghost", nil, n.token, 404},
		{"no token", "GET", "/v1/functions", nil, "", 401},
		{"a wrong token", "GET", "/v1/functions", nil, "nimbus_000000000000_" + strings.Repeat("0", 64), 401},
		{"a token of the wrong shape", "POST", "/v1/functions/ok/invoke", strings.NewReader("{}"), "hunter2", 401},
		{"metrics without a token", "GET", "/metrics", nil, "", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, n.url+c.path, c.body)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e client.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("error body is not {error:{code,message}}: %v", err)
			}
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("got %d (%s), want %d", resp.StatusCode, e.Error.Message, c.wantStatus)
			}
		})
	}
	t.Run("healthz needs no token", func(t *testing.T) {
		resp, err := http.Get(n.url + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("the CLI exits 3 for an unknown function and a bad token", func(t *testing.T) {
		n.mustCLI(3, "invoke", "ghost")
		n.mustCLI(3, "get", "ghost")
		r := n.cli("", "ls", "--token", "nimbus_000000000000_"+strings.Repeat("0", 64))
		if r.code != 3 {
			t.Fatalf("bad token: exit %d", r.code)
		}
	})
	t.Run("metrics count invocations", func(t *testing.T) {
		n.mustCLI(0, "invoke", "ok")
		_, _, b := n.do("GET", "/metrics", "", nil)
		if !strings.Contains(string(b), `nimbus_invocations_total{function="ok",namespace="default",outcome="success",trigger="sync"}`) {
			t.Fatalf("metrics lack the invocation counter:\n%s", b)
		}
	})
}

func TestHandlerFailures(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	deploy := func(name string, cfg map[string]any, src string) {
		t.Helper()
		if status, e := n.deployJSON(name, cfg, zipOf(t, map[string]string{"main.py": src})); status != 201 {
			t.Fatalf("deploy %s: %d %+v", name, status, e)
		}
	}
	// A missing handler module is refused at deploy (deploy_check_test.go);
	// a module whose own import fails is the runtime's to report.
	deploy("nomodule", map[string]any{}, "import missing_dependency\n\ndef handler(e, c):\n    return 1\n")
	deploy("nofunc", map[string]any{"handler": "main.absent"}, okHandler)
	deploy("raises", map[string]any{}, "def handler(e, c):\n    raise KeyError('boom')\n")
	deploy("unserialisable", map[string]any{}, "def handler(e, c):\n    return object()\n")
	deploy("sleeper", map[string]any{"timeout": "1s"}, "import time\ndef handler(e, c):\n    time.sleep(1e9)\n")
	deploy("spinner", map[string]any{"timeout": "1s"}, "def handler(e, c):\n    while True:\n        pass\n")
	deploy("exits", map[string]any{}, "import os\ndef handler(e, c):\n    os._exit(7)\n")

	for _, c := range []struct{ fn, errorType string }{
		{"nomodule", "Runtime.ImportModuleError"},
		{"nofunc", "Runtime.HandlerNotFound"},
		{"raises", "KeyError"},
		{"unserialisable", "Runtime.MarshalError"},
		{"sleeper", "Sandbox.Timeout"},
		{"spinner", "Sandbox.Timeout"},
		{"exits", "Sandbox.Crashed"},
	} {
		t.Run(c.fn+" fails with "+c.errorType, func(t *testing.T) {
			r := n.mustCLI(1, "invoke", c.fn)
			var fe struct{ ErrorType, ErrorMessage string }
			if err := json.Unmarshal([]byte(r.stdout), &fe); err != nil || fe.ErrorType != c.errorType || fe.ErrorMessage == "" {
				t.Fatalf("got %q (%v), want errorType %s with a message", r.stdout, err, c.errorType)
			}
			// The platform keeps answering after the failure.
			n.mustCLI(0, "get", c.fn)
		})
	}
	waitFor(t, patience, "the timeout is recorded as failed", func() bool {
		var recs []client.Invocation
		r := n.cli("", "invocations", "sleeper", "--status", "failed", "-o", "json")
		return json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 1 && recs[0].ErrorType == "Sandbox.Timeout"
	})
}

// TestDeleteWhileInvoking deletes a function while an invocation of it
// runs: the invocation finishes, the function is gone, nothing lingers.
func TestDeleteWhileInvoking(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	slow := "import time\ndef handler(e, c):\n    time.sleep(1.5)\n    return 'finished'\n"
	if status, e := n.deployJSON("slow", map[string]any{"timeout": "10s"}, zipOf(t, map[string]string{"main.py": slow})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	var wg sync.WaitGroup
	var res result
	wg.Add(1)
	go func() { defer wg.Done(); res = n.cli("", "invoke", "slow") }()
	waitFor(t, patience, "the invocation is running", func() bool {
		var cl client.Cluster
		r := n.cli("", "cluster", "-o", "json")
		return json.Unmarshal([]byte(r.stdout), &cl) == nil && len(cl.Workers) == 1 && cl.Workers[0].InUse == 1
	})
	n.mustCLI(0, "rm", "slow")
	wg.Wait()
	if res.code != 0 || !strings.Contains(res.stdout, "finished") {
		t.Fatalf("the running invocation did not finish: %+v", res)
	}
	n.mustCLI(3, "get", "slow")
	n.mustCLI(3, "invoke", "slow")
	var cl client.Cluster
	json.Unmarshal([]byte(n.mustCLI(0, "cluster", "-o", "json").stdout), &cl)
	if cl.Workers[0].WarmInstances != 0 {
		t.Fatalf("the deleted function's instance stayed warm: %+v", cl.Workers[0])
	}
}
