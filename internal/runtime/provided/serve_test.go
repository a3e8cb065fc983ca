package provided

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a bootstrap: with bootstrapMode set it talks
// to the Runtime API as a custom runtime does, as the mode says.
const bootstrapMode = "NIMBUS_PROVIDED_TEST_BOOTSTRAP"

func TestMain(m *testing.M) {
	if mode := os.Getenv(bootstrapMode); mode != "" {
		os.Exit(testBootstrap(mode))
	}
	os.Exit(m.Run())
}

// testBootstrap is a custom runtime: "echo" answers each event with it
// and a count; "init-error" posts an init error; "exit" exits at once;
// "die" exits during its first invocation.
func testBootstrap(mode string) int {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	fmt.Println("bootstrap starting:", mode, os.Getenv("_HANDLER"))
	switch mode {
	case "exit":
		return 3
	case "init-error":
		resp, err := http.Post(base+"/init/error", "application/json", strings.NewReader(`{"errorMessage":"no config","errorType":"Custom.Init"}`))
		if err == nil {
			resp.Body.Close()
		}
		select {} // the server ends it
	}
	for n := 1; ; n++ {
		resp, err := http.Get(base + "/invocation/next")
		if err != nil {
			return 1
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get(HeaderRequestID)
		if mode == "die" {
			fmt.Println("dying in", id)
			return 4
		}
		fmt.Println("handling", id)
		body := fmt.Sprintf(`{"n":%d,"event":%s,"deadline":%q}`, n, event, resp.Header.Get(HeaderDeadline))
		resp, err = http.Post(base+"/invocation/"+id+"/response", "application/json", strings.NewReader(body))
		if err != nil {
			return 1
		}
		resp.Body.Close()
	}
}

// instance runs Serve with the test binary as the bootstrap in mode, as
// the worker would, over pipes.
type instance struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *bufio.Reader
	done chan int
	log  *bytes.Buffer // written by Serve's goroutine: read after done
}

func serveWith(t *testing.T, mode string) *instance {
	t.Helper()
	t.Setenv(bootstrapMode, mode)
	t.Setenv("_HANDLER", "my.handler")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	i := &instance{t: t, in: inW, out: bufio.NewReader(outR), done: make(chan int, 1), log: &bytes.Buffer{}}
	go func() {
		code := Serve(inR, outW, i.log, Config{Addr: "127.0.0.1:0", Bootstrap: self})
		outW.Close()
		i.done <- code
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-i.done:
		case <-time.After(time.Minute):
			t.Error("Serve did not end within a minute of its input's end")
		}
	})
	init, _ := json.Marshal(map[string]any{"handler": "my.handler", "arn": "arn:fn"})
	i.send(init)
	return i
}

func (i *instance) send(body []byte) {
	if _, err := i.in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body)))); err != nil {
		i.t.Fatal(err)
	}
	if _, err := i.in.Write(body); err != nil {
		i.t.Fatal(err)
	}
}

func (i *instance) frame() []byte {
	i.t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, err := readFrame(i.out)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	select {
	case b := <-got:
		if b == nil {
			i.t.Fatal("no frame: the server's output ended")
		}
		return b
	case <-time.After(time.Minute):
		i.t.Fatal("no frame within a minute")
	}
	return nil
}

// invoke sends an invoke frame and returns the response's kind and body.
func (i *instance) invoke(id, event string) (byte, string) {
	i.t.Helper()
	b := []byte{kindInvoke}
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().Add(time.Minute).UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(append(b, id...), event...)
	i.send(b)
	f := i.frame()
	if len(f) < 11 {
		i.t.Fatalf("short response frame %q", f)
	}
	n := int(binary.BigEndian.Uint16(f[9:11]))
	if got := string(f[11 : 11+n]); got != id {
		i.t.Fatalf("response for %q, want %q", got, id)
	}
	return f[0], string(f[11+n:])
}

func TestServeRunsTheBootstrapWarmAcrossInvocations(t *testing.T) {
	i := serveWith(t, "echo")
	if f := i.frame(); string(f) != `{"ready":true}` {
		t.Fatalf("ready frame: %s", f)
	}
	for n := 1; n <= 3; n++ {
		kind, body := i.invoke(fmt.Sprintf("req-%d", n), `{"x":1}`)
		var got struct {
			N        int
			Event    map[string]int
			Deadline string
		}
		if kind != kindOK || json.Unmarshal([]byte(body), &got) != nil || got.N != n || got.Event["x"] != 1 || got.Deadline == "" {
			t.Fatalf("invocation %d: %c %s", n, kind, body)
		}
	}
}

func TestServeReportsAFailedInitAsTheInitError(t *testing.T) {
	cases := []struct {
		name, mode, errType, message string
	}{
		{"a bootstrap that posts an init error", "init-error", "Custom.Init", "no config"},
		{"a bootstrap that exits before its first next", "exit", ErrTypeExit, "Runtime exited with error: exit status 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := serveWith(t, c.mode)
			var ready struct {
				Ready *bool
				Error struct{ ErrorType, ErrorMessage string }
			}
			if f := i.frame(); json.Unmarshal(f, &ready) != nil || ready.Ready == nil || *ready.Ready || ready.Error.ErrorType != c.errType || ready.Error.ErrorMessage != c.message {
				t.Fatalf("ready frame: %s", f)
			}
			for range 2 { // every invocation answers with the init error
				kind, body := i.invoke("r", `{}`)
				if kind != kindError || !strings.Contains(body, c.errType) {
					t.Fatalf("invoke after a failed init: %c %s", kind, body)
				}
			}
		})
	}
}

func TestServeEndsWhenTheBootstrapDiesDuringAnInvocation(t *testing.T) {
	i := serveWith(t, "die")
	if f := i.frame(); string(f) != `{"ready":true}` {
		t.Fatalf("ready frame: %s", f)
	}
	kind, body := i.invoke("r", `{}`)
	if kind != kindError || !strings.Contains(body, ErrTypeExit) || !strings.Contains(body, "exit status 4") {
		t.Fatalf("invoke: %c %s", kind, body)
	}
	select {
	case code := <-i.done:
		i.done <- code // for the cleanup
		if code != 4 {
			t.Fatalf("Serve exited %d, want the bootstrap's 4", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve went on after its bootstrap died")
	}
}

func TestParseHWMReadsTheVmHWMLine(t *testing.T) {
	cases := []struct {
		name   string
		status string
		want   int64
	}{
		{"a status with the line", "Name:\tbootstrap\nVmPeak:\t  9000 kB\nVmHWM:\t    5432 kB\nVmRSS:\t 5000 kB\n", 5432},
		{"a status whose last line it is", "Name:\tx\nVmHWM:\t12 kB", 12},
		{"a status without it (a kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := parseHWM([]byte(c.status)); got != c.want {
				t.Errorf("parseHWM = %d, want %d", got, c.want)
			}
		})
	}
}

// maxRSSKB reads the live process's peak again on every call, from the
// file it keeps open, and reads nothing once it is closed.
func TestMaxRSSKBReadsTheProcessesPeakEachTime(t *testing.T) {
	c := &child{pid: os.Getpid(), statusFD: -1}
	first := c.maxRSSKB()
	if first <= 0 {
		t.Fatalf("maxRSSKB of this process = %d", first)
	}
	hog := make([]byte, 64<<20)
	for i := range hog {
		hog[i] = 1
	}
	if again := c.maxRSSKB(); again < first+32<<10 {
		t.Errorf("after touching 64 MB the peak went from %d to %d kB", first, again)
	}
	hog[len(hog)-1] = 2 // keep it
	c.closeStatus()
	if got := c.maxRSSKB(); got != 0 {
		t.Errorf("closed, maxRSSKB = %d", got)
	}
}
