package python

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/sandbox"
)

const testPython = "/usr/bin/python3.11"

var (
	bootOnce sync.Once
	bootPath string
	bootErr  error
)

// TestMain removes the bootstrap the instances shared once they are done.
// The isolating executor re-executes this binary to build a sandbox.
func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	code := m.Run()
	if bootPath != "" {
		os.RemoveAll(filepath.Dir(bootPath))
	}
	os.Exit(code)
}

// startTest starts an instance serving main.handler from code, with cfg
// adjusted by opts, and closes it when the test ends.
func startTest(t testing.TB, code string, opts ...func(*InstanceConfig)) *Instance {
	t.Helper()
	inst, err := startTestErr(t, code, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func startTestErr(t testing.TB, code string, opts ...func(*InstanceConfig)) (*Instance, error) {
	t.Helper()
	if _, err := os.Stat(testPython); err != nil {
		t.Skipf("%s not available", testPython)
	}
	bootOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nimbus-boot-")
		if err != nil {
			bootErr = err
			return
		}
		bootPath, bootErr = WriteBootstrap(dir)
	})
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	dir := t.TempDir()
	if code != "" {
		if err := os.WriteFile(filepath.Join(dir, "main.py"), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := InstanceConfig{
		Runtime:      Runtime{Name: "python3.11", Executable: testPython, Prefix: "/usr", Version: "3.11"},
		Bootstrap:    bootPath,
		CodeDir:      dir,
		Handler:      "main.handler",
		FunctionName: "hello",
		Revision:     7,
		MemoryMB:     256,
		Executor:     sandbox.NewProcessExecutor(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := Start(ctx, cfg)
	if err == nil {
		t.Cleanup(inst.Close)
	}
	return inst, err
}

func invoke(t testing.TB, inst *Instance, id, payload string, timeout time.Duration) Response {
	t.Helper()
	resp, err := inst.Invoke(context.Background(), Request{RequestID: id, Payload: []byte(payload), Timeout: timeout})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return resp
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

func TestSuccessfulInvokeSeesEventAndContext(t *testing.T) {
	inst := startTest(t, `
import os
def handler(event, context):
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "cwd": os.getcwd(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
    }
`)
	resp := invoke(t, inst, "req-1", `{"name":"nimbus","n":[1,2]}`, 3*time.Second)
	if resp.ErrorType != "" {
		t.Fatalf("error %s: %s", resp.ErrorType, resp.Payload)
	}
	got := decode(t, resp.Payload)
	want := map[string]any{
		"function_name":    "hello",
		"function_version": "7",
		"arn":              "arn:aws:lambda:local:000000000000:function:hello",
		"memory":           float64(256),
		"request_id":       "req-1",
		"log_group":        "/aws/lambda/hello",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if ev, _ := json.Marshal(got["event"]); string(ev) != `{"n":[1,2],"name":"nimbus"}` {
		t.Errorf("event = %s", ev)
	}
	if r := got["remaining"].(float64); r <= 0 || r > 3000 {
		t.Errorf("remaining = %v", r)
	}
	if s, _ := got["log_stream"].(string); !strings.Contains(s, "/[7]") {
		t.Errorf("log_stream = %q", s)
	}
	if got["cwd"] != got["task_root"] || got["cwd"] != inst.cfg.CodeDir {
		t.Errorf("cwd %v, task root %v, code dir %s", got["cwd"], got["task_root"], inst.cfg.CodeDir)
	}
	if resp.InitDuration <= 0 || resp.Duration <= 0 || resp.BilledMS < 1 || resp.MaxMemoryMB <= 0 {
		t.Errorf("accounting: %+v", resp)
	}
	if resp2 := invoke(t, inst, "req-2", `"raw"`, time.Second); resp2.InitDuration != 0 {
		t.Errorf("second invoke has InitDuration %v", resp2.InitDuration)
	}
}

func TestPayloadThatIsNotJSONArrivesAsString(t *testing.T) {
	inst := startTest(t, "def handler(event, context):\n    return [type(event).__name__, event]\n")
	if resp := invoke(t, inst, "r", `not json`, time.Second); string(resp.Payload) != `["str", "not json"]` {
		t.Fatalf("payload %s", resp.Payload)
	}
	if resp := invoke(t, inst, "r2", ``, time.Second); string(resp.Payload) != `["dict", {}]` {
		t.Fatalf("empty payload gave %s", resp.Payload)
	}
}

func TestModuleStateSurvivesBetweenInvocations(t *testing.T) {
	inst := startTest(t, "count = 0\ndef handler(event, context):\n    global count\n    count += 1\n    return count\n")
	for want := 1; want <= 3; want++ {
		if resp := invoke(t, inst, "r", `{}`, time.Second); string(resp.Payload) != string(rune('0'+want)) {
			t.Fatalf("invoke %d returned %s", want, resp.Payload)
		}
	}
	if !inst.Alive() {
		t.Fatal("instance died")
	}
}

func TestHandlerExceptionBecomesLambdaErrorDocument(t *testing.T) {
	inst := startTest(t, "def fail(x):\n    raise ValueError('bad value: %s' % x)\ndef handler(event, context):\n    fail(event['x'])\n")
	resp := invoke(t, inst, "r", `{"x":42}`, time.Second)
	if resp.ErrorType != "ValueError" {
		t.Fatalf("ErrorType %q: %s", resp.ErrorType, resp.Payload)
	}
	var doc struct {
		ErrorMessage string   `json:"errorMessage"`
		ErrorType    string   `json:"errorType"`
		StackTrace   []string `json:"stackTrace"`
	}
	if err := json.Unmarshal(resp.Payload, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ErrorMessage != "bad value: 42" || doc.ErrorType != "ValueError" || len(doc.StackTrace) != 2 {
		t.Fatalf("doc = %+v", doc)
	}
	if !strings.Contains(doc.StackTrace[0], "main.py") || strings.Contains(strings.Join(doc.StackTrace, ""), "bootstrap") {
		t.Fatalf("stack trace %q", doc.StackTrace)
	}
	if !strings.Contains(string(resp.Log), "[ERROR] ValueError: bad value: 42") {
		t.Fatalf("log lacks the error:\n%s", resp.Log)
	}
	if !inst.Alive() {
		t.Fatal("a handler error killed the instance")
	}
	if resp := invoke(t, inst, "r2", `{"x":1}`, time.Second); resp.ErrorType != "ValueError" {
		t.Fatalf("second invoke: %s", resp.Payload)
	}
}

func TestInitFailuresAnswerEveryInvocation(t *testing.T) {
	cases := []struct {
		name, code, handler, wantType, wantMsg string
	}{
		{"a missing module gives ImportModuleError", "", "nosuchmod.handler", "Runtime.ImportModuleError", "nosuchmod"},
		{"a module whose import fails gives ImportModuleError", "import nosuchdep\ndef handler(e, c): pass\n", "main.handler", "Runtime.ImportModuleError", "nosuchdep"},
		{"a module that raises on import gives ImportModuleError", "raise RuntimeError('boom')\n", "main.handler", "Runtime.ImportModuleError", "boom"},
		{"a missing function gives HandlerNotFound", "def other(e, c): pass\n", "main.handler", "Runtime.HandlerNotFound", "handler"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst := startTest(t, c.code, func(cfg *InstanceConfig) { cfg.Handler = c.handler })
			if inst.InitErrorType() != c.wantType {
				t.Fatalf("InitErrorType %q", inst.InitErrorType())
			}
			for _, id := range []string{"a", "b"} {
				resp := invoke(t, inst, id, `{}`, time.Second)
				if resp.ErrorType != c.wantType || !strings.Contains(string(resp.Payload), c.wantMsg) {
					t.Fatalf("invoke %s: %s %s", id, resp.ErrorType, resp.Payload)
				}
			}
		})
	}
}

func TestUnserialisableResultGivesMarshalError(t *testing.T) {
	inst := startTest(t, "def handler(event, context):\n    return {'s': {1, 2}} if event else float('nan')\n")
	for _, payload := range []string{`1`, `0`} {
		if resp := invoke(t, inst, "r", payload, time.Second); resp.ErrorType != "Runtime.MarshalError" {
			t.Fatalf("payload %s: %s %s", payload, resp.ErrorType, resp.Payload)
		}
	}
}

func TestLogIsFramedAndPerInvocation(t *testing.T) {
	inst := startTest(t, `
import sys
print("init says hi")
def handler(event, context):
    print("out", event)
    print("err", event, file=sys.stderr)
    sys.stdout.write("no newline")
    return None
`)
	resp := invoke(t, inst, "id-1", `1`, time.Second)
	log := string(resp.Log)
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	want := []string{"init says hi", "START RequestId: id-1 Version: 7", "out 1", "err 1", "no newline", "END RequestId: id-1"}
	if len(lines) != 7 || strings.Join(lines[:6], "|") != strings.Join(want, "|") {
		t.Fatalf("log:\n%s", log)
	}
	if !strings.HasPrefix(lines[6], "REPORT RequestId: id-1\tDuration: ") || !strings.Contains(lines[6], "\tMemory Size: 256 MB\tMax Memory Used: ") ||
		!strings.Contains(lines[6], "\tBilled Duration: ") || !strings.Contains(lines[6], "\tInit Duration: ") {
		t.Fatalf("REPORT line %q", lines[6])
	}
	if string(resp.Payload) != "null" {
		t.Fatalf("payload %s", resp.Payload)
	}
	resp = invoke(t, inst, "id-2", `2`, time.Second)
	log = string(resp.Log)
	if strings.Contains(log, "init says hi") || strings.Contains(log, "out 1") || !strings.Contains(log, "out 2") || strings.Contains(log, "Init Duration") {
		t.Fatalf("second log:\n%s", log)
	}
}

// expectPlatformError checks a platform outcome and that the instance is
// dead afterwards.
func expectPlatformError(t *testing.T, inst *Instance, resp Response, errType, msg string) {
	t.Helper()
	if resp.ErrorType != errType || !strings.Contains(string(resp.Payload), msg) {
		t.Fatalf("got %s %s, want %s containing %q\nlog:\n%s", resp.ErrorType, resp.Payload, errType, msg, resp.Log)
	}
	if !strings.Contains(string(resp.Log), "END RequestId:") || !strings.Contains(string(resp.Log), "REPORT RequestId:") {
		t.Fatalf("log not framed:\n%s", resp.Log)
	}
	if inst.Alive() {
		t.Fatal("instance alive after a platform outcome")
	}
	if _, err := inst.Invoke(context.Background(), Request{RequestID: "after", Timeout: time.Second}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke after death: %v", err)
	}
}

func TestTimeoutKillsTheInstance(t *testing.T) {
	cases := []struct{ name, body string }{
		{"a busy loop times out", "while True: pass"},
		{"a long sleep times out", "import time; time.sleep(1e9)"},
		{"a handler ignoring SIGTERM times out", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1e9)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inst := startTest(t, "def handler(event, context):\n    print('working')\n    "+c.body+"\n")
			start := time.Now()
			resp := invoke(t, inst, "r", `{}`, time.Second)
			if el := time.Since(start); el < time.Second || el > 5*time.Second {
				t.Fatalf("took %v", el)
			}
			expectPlatformError(t, inst, resp, ErrTypeTimeout, "Task timed out after 1.00 seconds")
			if !strings.Contains(string(resp.Log), "working") {
				t.Fatalf("partial log lost:\n%s", resp.Log)
			}
		})
	}
}

func TestOutputFloodIsCutAtTheLogLimit(t *testing.T) {
	inst := startTest(t, "import sys\ndef handler(event, context):\n    while True:\n        sys.stdout.write('x' * 10000 + '\\n')\n",
		func(c *InstanceConfig) { c.LogLimit = 64 << 10 })
	resp := invoke(t, inst, "r", `{}`, 10*time.Second)
	expectPlatformError(t, inst, resp, ErrTypeOutputLimit, "Log output over the limit")
	if len(resp.Log) > 64<<10+1024 {
		t.Fatalf("log of %d bytes", len(resp.Log))
	}
}

func TestResultOverTheLimit(t *testing.T) {
	inst := startTest(t, "def handler(event, context):\n    return 'y' * event\n",
		func(c *InstanceConfig) { c.ResultLimit = 1000 })
	if resp := invoke(t, inst, "ok", `500`, time.Second); resp.ErrorType != "" {
		t.Fatalf("small result: %s", resp.Payload)
	}
	t.Run("just over the limit is read and refused", func(t *testing.T) {
		inst := startTest(t, "def handler(event, context):\n    return 'y' * event\n",
			func(c *InstanceConfig) { c.ResultLimit = 1000 })
		resp := invoke(t, inst, "r", `2000`, time.Second)
		expectPlatformError(t, inst, resp, ErrTypeOutputLimit, "Response payload over the limit")
	})
	t.Run("far over the limit is refused from its length", func(t *testing.T) {
		resp := invoke(t, inst, "r", `10000000`, 5*time.Second)
		expectPlatformError(t, inst, resp, ErrTypeOutputLimit, "Response payload over the limit")
	})
}

func TestCrashes(t *testing.T) {
	cases := []struct{ name, body, msg string }{
		{"os._exit reports the exit status", "import os; os._exit(3)", "exit status 3"},
		{"a segfault reports the signal", "import ctypes; ctypes.string_at(0)", "signal SIGSEGV"},
		{"sys.exit reports the exit status", "import sys; sys.exit(5)", "exit status 5"},
		{"closing the protocol fds crashes", "import os; os.close(3); os.close(4)", "Runtime"},
		{"garbage on the response fd crashes", "import os; os.write(4, b'garbage!garbage!')", "protocol"},
		{"a forged frame crashes", "import os; os.write(4, b'\\x00\\x00\\x00\\x02{}')", "protocol"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inst := startTest(t, "def handler(event, context):\n    "+c.body+"\n    return 1\n")
			resp := invoke(t, inst, "r", `{}`, 5*time.Second)
			expectPlatformError(t, inst, resp, ErrTypeCrashed, c.msg)
			t.Logf("%s", resp.Payload)
		})
	}
}

func TestRemainingTimeDecreases(t *testing.T) {
	inst := startTest(t, "import time\ndef handler(event, context):\n    a = context.get_remaining_time_in_millis()\n    time.sleep(0.05)\n    return [a, context.get_remaining_time_in_millis()]\n")
	var got [2]int
	if err := json.Unmarshal(invoke(t, inst, "r", `{}`, 2*time.Second).Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got[0] > 2000 || got[0] < 1500 || got[1] > got[0]-40 {
		t.Fatalf("remaining %v", got)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("NIMBUS_PARENT_SECRET", "leak")
	inst := startTest(t, "import os\ndef handler(event, context):\n    return dict(os.environ)\n", func(c *InstanceConfig) {
		c.Env = map[string]string{"GREETING": "hi", "PATH": "/evil", "AWS_LAMBDA_FUNCTION_NAME": "evil", "_HANDLER": "x.y"}
	})
	env := decode(t, invoke(t, inst, "r", `{}`, time.Second).Payload)
	want := map[string]any{
		"GREETING": "hi", "PATH": "/usr/local/bin:/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "hello",
		"_HANDLER": "main.handler", "AWS_LAMBDA_FUNCTION_VERSION": "7", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/hello", "LANG": "C.UTF-8",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %v, want %v", k, env[k], v)
		}
	}
	if _, ok := env["NIMBUS_PARENT_SECRET"]; ok {
		t.Error("worker environment leaked into the instance")
	}
}

func TestCloseIsIdempotentAndEndsTheInstance(t *testing.T) {
	inst := startTest(t, "def handler(event, context):\n    return 1\n")
	if !inst.Alive() || inst.Pid() <= 0 {
		t.Fatal("not alive after Start")
	}
	invoke(t, inst, "r", `{}`, time.Second)
	inst.Close()
	inst.Close()
	if inst.Alive() {
		t.Fatal("alive after Close")
	}
	if _, err := inst.Invoke(context.Background(), Request{RequestID: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke after Close: %v", err)
	}
}

func TestCloseDuringInvokeReturnsErrClosed(t *testing.T) {
	inst := startTest(t, "import time\ndef handler(event, context):\n    time.sleep(100)\n")
	errc := make(chan error, 1)
	go func() {
		_, err := inst.Invoke(context.Background(), Request{RequestID: "r", Timeout: time.Minute})
		errc <- err
	}()
	inst.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke: %v", err)
	}
}

func TestStartFailsWhenTheInterpreterDies(t *testing.T) {
	_, err := startTestErr(t, "", func(c *InstanceConfig) { c.Bootstrap = filepath.Join(t.TempDir(), "missing.py") })
	if err == nil || !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("Start: %v", err)
	}
}

// BenchmarkWarmInvoke runs a no-op handler with the worker's reader
// parked on the response pipe, and busy-polling it (Request.Spin).
func BenchmarkWarmInvoke(b *testing.B) {
	for _, spin := range []time.Duration{0, 50 * time.Microsecond} {
		name := "parked"
		if spin > 0 {
			name = "spinning"
		}
		b.Run(name, func(b *testing.B) {
			inst := startTest(b, "def handler(event, context):\n    return None\n")
			req := Request{RequestID: "bench", Payload: []byte(`{"k":"v"}`), Timeout: 10 * time.Second, Spin: spin}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := inst.Invoke(ctx, req)
				if err != nil || resp.ErrorType != "" {
					b.Fatalf("%v %s", err, resp.Payload)
				}
			}
		})
	}
}

// A reader that busy-polls for the response (Request.Spin) sees every
// outcome a parked one sees: an answer within the budget or after it, a
// crash or garbage met while polling, and a timeout that outlasts it.
func TestSpinningReaderSeesEveryOutcome(t *testing.T) {
	cases := []struct {
		name, body string
		spin       time.Duration
		timeout    time.Duration
		check      func(t *testing.T, inst *Instance, resp Response)
	}{
		{"an answer within the budget", "return event", 5 * time.Second, 10 * time.Second, func(t *testing.T, _ *Instance, resp Response) {
			if resp.ErrorType != "" || string(resp.Payload) != `{"n": 1}` {
				t.Fatalf("got %s %s", resp.ErrorType, resp.Payload)
			}
		}},
		{"an answer after the budget", "import time; time.sleep(0.05); return event", 10 * time.Microsecond, 10 * time.Second, func(t *testing.T, _ *Instance, resp Response) {
			if resp.ErrorType != "" || string(resp.Payload) != `{"n": 1}` {
				t.Fatalf("got %s %s", resp.ErrorType, resp.Payload)
			}
		}},
		{"a crash while polling", "import os; os._exit(3)", 5 * time.Second, 10 * time.Second, func(t *testing.T, inst *Instance, resp Response) {
			expectPlatformError(t, inst, resp, ErrTypeCrashed, "exit status 3")
		}},
		{"garbage while polling", "import os; os.write(4, b'garbage!garbage!')", 5 * time.Second, 10 * time.Second, func(t *testing.T, inst *Instance, resp Response) {
			expectPlatformError(t, inst, resp, ErrTypeCrashed, "protocol")
		}},
		{"a timeout the budget would outlast", "import time; time.sleep(1e9)", time.Hour, time.Second, func(t *testing.T, inst *Instance, resp Response) {
			expectPlatformError(t, inst, resp, ErrTypeTimeout, "timed out")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inst := startTest(t, "def handler(event, context):\n    "+c.body+"\n")
			resp, err := inst.Invoke(context.Background(), Request{RequestID: "r", Payload: []byte(`{"n":1}`), Timeout: c.timeout, Spin: c.spin})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			c.check(t, inst, resp)
		})
	}
}

func TestTimeoutKillsProcessesTheHandlerStarted(t *testing.T) {
	inst := startTest(t, "import os, time\ndef handler(event, context):\n    os.system('sleep 1000 &')\n    time.sleep(1e9)\n")
	resp := invoke(t, inst, "r", `{}`, time.Second)
	expectPlatformError(t, inst, resp, ErrTypeTimeout, "Task timed out")
}

func TestCanceledContextKillsTheInstance(t *testing.T) {
	inst := startTest(t, "import time\ndef handler(event, context):\n    time.sleep(1e9)\n")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := inst.Invoke(ctx, Request{RequestID: "r", Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || inst.Alive() {
		t.Fatalf("err %v, alive %v", err, inst.Alive())
	}
}

func TestConcurrentInvokesAreSerialised(t *testing.T) {
	inst := startTest(t, "import time\nbusy = False\ndef handler(event, context):\n    global busy\n    assert not busy\n    busy = True\n    time.sleep(0.01)\n    busy = False\n    print(event)\n    return event\n")
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + k))
			resp, err := inst.Invoke(context.Background(), Request{RequestID: id, Payload: []byte(`"` + id + `"`), Timeout: 5 * time.Second})
			if err != nil || resp.ErrorType != "" || string(resp.Payload) != `"`+id+`"` ||
				!strings.Contains(string(resp.Log), "START RequestId: "+id+" ") || !strings.Contains(string(resp.Log), "\n"+id+"\n") {
				t.Errorf("invoke %s: %v %s\n%s", id, err, resp.Payload, resp.Log)
			}
		}()
	}
	wg.Wait()
}

func TestAGeneratorHandlerStreamsItsChunksInOrder(t *testing.T) {
	inst := startTest(t, `
import json
def handler(event, context):
    if event.get("fail"):
        def broken():
            yield "before\n"
            raise RuntimeError("mid-stream")
        return broken()
    def gen():
        print("log line")
        yield "text\n"
        yield b"bytes\n"
        yield {"n": 1}
        yield ""
        for i in range(event.get("more", 0)):
            yield "x" * 1000
    return gen()
`)
	var chunks []string
	resp, err := inst.Invoke(context.Background(), Request{RequestID: "s1", Payload: []byte(`{}`), Timeout: 10 * time.Second,
		Chunk: func(b []byte) { chunks = append(chunks, string(b)) }})
	if err != nil || resp.ErrorType != "" {
		t.Fatalf("%v %+v", err, resp)
	}
	if want := []string{"text\n", "bytes\n", `{"n": 1}`}; strings.Join(chunks, "|") != strings.Join(want, "|") {
		t.Fatalf("chunks %q, want %q", chunks, want)
	}
	if !strings.Contains(string(resp.Log), "log line") {
		t.Fatalf("log %q", resp.Log)
	}
	// Without a Chunk callback, the stream is the payload.
	resp = invoke(t, inst, "s2", `{"more": 100}`, 10*time.Second)
	if resp.ErrorType != "" || !strings.HasPrefix(string(resp.Payload), `text`+"\n"+`bytes`) || len(resp.Payload) != 5+6+8+100_000 {
		t.Fatalf("joined payload of %d bytes: %q...", len(resp.Payload), resp.Payload[:min(40, len(resp.Payload))])
	}
	// An exception mid-stream ends it with its error; the instance lives on.
	chunks = nil
	resp, err = inst.Invoke(context.Background(), Request{RequestID: "s3", Payload: []byte(`{"fail": true}`), Timeout: 10 * time.Second,
		Chunk: func(b []byte) { chunks = append(chunks, string(b)) }})
	if err != nil || resp.ErrorType != "RuntimeError" || len(chunks) != 1 {
		t.Fatalf("%v %+v %q", err, resp, chunks)
	}
	if resp := invoke(t, inst, "s4", `{}`, 10*time.Second); resp.ErrorType != "" || !inst.Alive() {
		t.Fatalf("after a failed stream: %+v", resp)
	}
}
