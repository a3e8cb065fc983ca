package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// pyBootstrap is a custom runtime written in Python: it loops on the
// Runtime API with http.client, counts its invocations in its own memory
// (the same process serves them while warm), and answers with what it
// was given; an event {"fail": true} posts an error, and {"hog_mb": N}
// takes N MB first.
const pyBootstrap = `#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
count = 0
print("python bootstrap up, handler", os.environ["_HANDLER"])
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    count += 1
    print("handling", rid)
    if event.get("hog_mb"):
        hog = b"x" * (event["hog_mb"] << 20)
    if event.get("fail"):
        body = json.dumps({"errorMessage": "asked to fail", "errorType": "Custom.Failure", "stackTrace": ["bootstrap line 15"]})
        conn.request("POST", "/2018-06-01/runtime/invocation/%s/error" % rid, body, {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
    else:
        env = {k: os.environ.get(k) for k in ("_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_NAME",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_RUNTIME_API")}
        headers = {h: r.getheader(h) for h in ("Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id")}
        out = {"count": count, "pid": os.getpid(), "event": event, "env": env, "headers": headers, "request_id": rid}
        conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, json.dumps(out))
    conn.getresponse().read()
`

// goBootstrap is a custom runtime written in Go (the standard library
// only), built static by the test. MODE=init-error posts an init error,
// MODE=exit exits before asking for an event; else it sleeps for the
// event's sleep_ms and answers.
const goBootstrap = `package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	switch os.Getenv("MODE") {
	case "init-error":
		fmt.Println("go bootstrap: no configuration")
		resp, err := http.Post(api+"/init/error", "application/json",
			strings.NewReader(` + "`" + `{"errorMessage":"missing configuration","errorType":"Custom.InitError"}` + "`" + `))
		if err == nil {
			resp.Body.Close()
		}
		select {} // an init error ends here: the runtime ends the instance
	case "exit":
		fmt.Println("go bootstrap: giving up")
		os.Exit(2)
	}
	for {
		resp, err := http.Get(api + "/invocation/next")
		if err != nil {
			fmt.Println("next:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var ev struct {
			SleepMS int ` + "`json:\"sleep_ms\"`" + `
		}
		json.Unmarshal(body, &ev)
		fmt.Println("go bootstrap handling", id)
		<-time.After(time.Duration(ev.SleepMS) * time.Millisecond) // the handler's own work
		out := fmt.Sprintf(` + "`" + `{"runtime":"go","slept_ms":%d,"pid":%d}` + "`" + `, ev.SleepMS, os.Getpid())
		resp, err = http.Post(api+"/invocation/"+id+"/response", "application/json", strings.NewReader(out))
		if err != nil {
			fmt.Println("response:", err)
			os.Exit(1)
		}
		resp.Body.Close()
	}
}
`

// writeCustom writes a provided function's package: its nimbus.yaml and
// an executable bootstrap.
func writeCustom(t *testing.T, manifest, bootstrap string) string {
	t.Helper()
	dir := writeTree(t, map[string]string{"nimbus.yaml": manifest, "bootstrap": bootstrap})
	if err := os.Chmod(filepath.Join(dir, "bootstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildGoBootstrap builds goBootstrap, static, into dir/bootstrap.
func buildGoBootstrap(t *testing.T, dir string) {
	t.Helper()
	src := writeTree(t, map[string]string{"go.mod": "module bootstrap\n\ngo 1.22\n", "main.go": goBootstrap})
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "bootstrap"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go bootstrap: %v\n%s", err, out)
	}
}

// lambdaError decodes an error result in Lambda's shape.
func lambdaError(t *testing.T, out string) (errType, msg string) {
	t.Helper()
	var e struct{ ErrorType, ErrorMessage string }
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("not an error document: %q (%v)", out, err)
	}
	return e.ErrorType, e.ErrorMessage
}

// A function with runtime: provided runs the executable bootstrap of its
// package in the sandbox, against the Lambda Runtime API, as Lambda's
// custom runtimes do: written in Python or in Go, warm between
// invocations, with Lambda's error shapes, timeouts and init errors, and
// a package without an executable bootstrap is refused.
func TestCustomRuntime(t *testing.T) {
	parallel(t)
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root (namespaces, cgroups, mounts)")
	}
	n := startDev(t, t.TempDir())
	defer func() {
		if t.Failed() {
			t.Logf("nimbus output:\n%s", n.out.String())
		}
	}()
	var offers []client.RuntimeOffer
	if err := json.Unmarshal([]byte(n.mustCLI(0, "runtimes", "-o", "json").stdout), &offers); err != nil {
		t.Fatal(err)
	}
	offered := false
	for _, o := range offers {
		offered = offered || (o.Name == "provided" && len(o.Workers) == 1)
	}
	if !offered {
		t.Fatalf("the worker does not offer the provided runtime: %+v", offers)
	}

	t.Run("a Python bootstrap answers, stays warm and fails in Lambda's shape", func(t *testing.T) {
		// A timeout well past the 600 MB hog's page faults at a quarter
		// CPU on a busy machine, which must end in the OOM kill.
		n.mustCLI(0, "deploy", writeCustom(t, "name: pycustom\nruntime: provided\nhandler: app.handle\nmemory: 256\ntimeout: 60s\n", pyBootstrap))
		type answer struct {
			Count     int
			Pid       int
			Event     map[string]int
			Env       map[string]string
			Headers   map[string]string
			RequestID string `json:"request_id"`
		}
		var first, second answer
		if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "pycustom", "--data", `{"n":1}`).stdout), &first); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "pycustom", "--data", `{"n":2}`).stdout), &second); err != nil {
			t.Fatal(err)
		}
		if first.Count != 1 || first.Event["n"] != 1 || second.Count != 2 || second.Pid != first.Pid || second.Event["n"] != 2 {
			t.Fatalf("not one warm bootstrap: %+v then %+v", first, second)
		}
		wantEnv := map[string]string{"_HANDLER": "app.handle", "LAMBDA_TASK_ROOT": "/var/task", "AWS_LAMBDA_FUNCTION_NAME": "pycustom",
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
		for k, v := range wantEnv {
			if first.Env[k] != v {
				t.Errorf("%s = %q, want %q", k, first.Env[k], v)
			}
		}
		for _, h := range []string{"Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id"} {
			if first.Headers[h] == "" {
				t.Errorf("the event came without %s: %+v", h, first.Headers)
			}
		}
		if !strings.HasSuffix(first.Headers["Lambda-Runtime-Invoked-Function-Arn"], ":function:pycustom") {
			t.Errorf("function ARN %q", first.Headers["Lambda-Runtime-Invoked-Function-Arn"])
		}

		r := n.mustCLI(1, "invoke", "pycustom", "--data", `{"fail":true}`)
		if typ, msg := lambdaError(t, r.stdout); typ != "Custom.Failure" || msg != "asked to fail" {
			t.Fatalf("error result: %s", r.stdout)
		}
		status, hdr, body := n.do("POST", "/v1/functions/pycustom/invoke", "application/json", strings.NewReader(`{"fail":true}`))
		if status != 200 || hdr.Get(client.HeaderFunctionError) == "" || !strings.Contains(string(body), `"errorType":"Custom.Failure"`) {
			t.Fatalf("the invoke route: %d %v %s", status, hdr, body)
		}

		var recs []client.Invocation
		waitFor(t, patience, "four records of pycustom", func() bool {
			recs = n.invocations("pycustom")
			return len(recs) == 4
		})
		cold := 0
		for _, rec := range recs {
			if rec.ColdStart {
				cold++
			}
		}
		if cold != 1 {
			t.Fatalf("%d cold starts in four invocations of one warm bootstrap: %+v", cold, recs)
		}
		logs := n.mustCLI(0, "logs", "pycustom").stdout
		for _, want := range []string{"python bootstrap up, handler app.handle", "handling " + first.RequestID, "REPORT RequestId: " + first.RequestID} {
			if !strings.Contains(logs, want) {
				t.Fatalf("the log lacks %q:\n%s", want, logs)
			}
		}

		// The function's memory size bounds the bootstrap as it bounds a
		// Python handler; the next invocation starts afresh.
		r = n.mustCLI(1, "invoke", "pycustom", "--data", `{"hog_mb":600}`)
		if typ, _ := lambdaError(t, r.stdout); typ != "Sandbox.OutOfMemory" {
			t.Fatalf("a bootstrap over its memory size: %s", r.stdout)
		}
		var after answer
		if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "pycustom", "--data", `{"n":3}`).stdout), &after); err != nil || after.Count != 1 {
			t.Fatalf("after the OOM kill: %+v %v", after, err)
		}
	})

	t.Run("another function's sandbox cannot reach the Runtime API", func(t *testing.T) {
		// pycustom's instance is warm, its API listening in its sandbox.
		n.mustCLI(0, "invoke", "pycustom", "--data", `{"n":4}`)
		probe := "import socket\ndef handler(e, c):\n    try:\n        socket.create_connection(('127.0.0.1', 9001), 2).close()\n        return 'connected'\n    except OSError as err:\n        return type(err).__name__\n"
		n.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "prober", probe), "--name", "prober")
		if r := n.mustCLI(0, "invoke", "prober"); !strings.Contains(r.stdout, "ConnectionRefusedError") {
			t.Fatalf("a Python function connecting to 127.0.0.1:9001: %s", r.stdout)
		}
	})

	t.Run("the example runs", func(t *testing.T) {
		n.mustCLI(0, "deploy", "../examples/custom-runtime")
		if r := n.mustCLI(0, "invoke", "shout", "--data", `{"text":"hello"}`); !strings.Contains(r.stdout, `"HELLO!"`) {
			t.Fatalf("invoke: %+v", r)
		}
		if typ, _ := lambdaError(t, n.mustCLI(1, "invoke", "shout", "--data", `{}`).stdout); typ != "KeyError" {
			t.Fatal("the example's error is not a KeyError")
		}
	})

	t.Run("a Go bootstrap runs, times out, and fails at init", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"nimbus.yaml": "name: gocustom\nruntime: provided.al2023\ntimeout: 1s\n"})
		buildGoBootstrap(t, dir)
		n.mustCLI(0, "deploy", dir)
		var got struct {
			Runtime string
			SleptMS int `json:"slept_ms"`
		}
		if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "gocustom", "--data", `{"sleep_ms":1}`).stdout), &got); err != nil || got.Runtime != "go" || got.SleptMS != 1 {
			t.Fatalf("invoke: %+v %v", got, err)
		}
		if fn, ok := n.function("gocustom"); !ok || fn.Runtime != "provided" {
			t.Fatalf("the alias is stored as provided: %+v", fn)
		}
		r := n.mustCLI(1, "invoke", "gocustom", "--data", `{"sleep_ms":60000}`)
		if typ, _ := lambdaError(t, r.stdout); typ != "Sandbox.Timeout" {
			t.Fatalf("a handler sleeping past its timeout: %s", r.stdout)
		}
		// The next invocation gets a fresh instance.
		n.mustCLI(0, "invoke", "gocustom", "--data", `{"sleep_ms":1}`)

		for _, c := range []struct{ mode, errType, msg, logged string }{
			{"init-error", "Custom.InitError", "missing configuration", "go bootstrap: no configuration"},
			{"exit", "Runtime.ExitError", "Runtime exited with error: exit status 2", "go bootstrap: giving up"},
		} {
			name := "go" + c.mode
			d := writeTree(t, map[string]string{"nimbus.yaml": "name: " + name + "\nruntime: provided\nenv: {MODE: " + c.mode + "}\n"})
			buildGoBootstrap(t, d)
			n.mustCLI(0, "deploy", d)
			r := n.mustCLI(1, "invoke", name)
			if typ, msg := lambdaError(t, r.stdout); typ != c.errType || msg != c.msg {
				t.Fatalf("%s: %s", c.mode, r.stdout)
			}
			if logs := n.mustCLI(0, "logs", name).stdout; !strings.Contains(logs, c.logged) || !strings.Contains(logs, "[ERROR] "+c.errType) {
				t.Fatalf("%s: the log lacks the bootstrap's output or the error:\n%s", c.mode, logs)
			}
		}
	})

	t.Run("a package without an executable bootstrap is refused", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			files map[string]string
			want  string
		}{
			{"nobootstrap", map[string]string{"main.py": "def handler(e, c):\n    return 1\n"}, `needs an executable file named "bootstrap"`},
			{"notexec", map[string]string{"bootstrap": "#!/usr/bin/python3\n"}, "is not executable"},
		} {
			c.files["nimbus.yaml"] = "name: " + c.name + "\nruntime: provided\n"
			r := n.cli("", "deploy", writeTree(t, c.files))
			if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "400") {
				t.Fatalf("%s: %+v", c.name, r)
			}
			if _, ok := n.function(c.name); ok {
				t.Fatalf("%s was deployed", c.name)
			}
		}
	})
}
