package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"nimbus/pkg/client"
)

// runOf starts a one-file run of src through api; it is closed when the
// test ends.
func runOf(t *testing.T, api *client.Client, src string, start client.RunStart) *client.RunConn {
	t.Helper()
	if start.Files == nil {
		start.Files = map[string]string{"main.py": src}
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	conn, err := api.Run(ctx, start)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// transcript is what a run sent until its exit or error notice.
type transcript struct {
	stdout, stderr bytes.Buffer
	chunks         int
	notices        []client.RunNotice
	exit           *client.RunExit
	err            *client.RunNotice // an error notice
}

// readRun reads conn to its end (an exit or an error notice), checking
// that no output message is larger than the protocol allows.
func readRun(t *testing.T, conn *client.RunConn) *transcript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	tr := &transcript{}
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			t.Fatalf("the run's connection ended before its exit: %v (stdout %q, stderr %q)", err, tail(tr.stdout.String()), tail(tr.stderr.String()))
		}
		if m.Notice == nil {
			if len(m.Data) == 0 || len(m.Data) > client.RunChunk {
				t.Fatalf("an output message of %d bytes", len(m.Data))
			}
			tr.chunks++
			if m.Stream == client.RunStderr {
				tr.stderr.Write(m.Data)
			} else {
				tr.stdout.Write(m.Data)
			}
			continue
		}
		tr.notices = append(tr.notices, *m.Notice)
		switch m.Notice.Type {
		case "exit":
			tr.exit = m.Notice.Exit
			return tr
		case "error":
			tr.err = m.Notice
			return tr
		}
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return "..." + s[len(s)-300:]
	}
	return s
}

// nextStdout reads conn until its stdout ends a line, and returns it.
func nextStdout(t *testing.T, conn *client.RunConn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var line []byte
	for !bytes.HasSuffix(line, []byte("\n")) {
		m, err := conn.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a line: %v (got %q)", err, line)
		}
		if n := m.Notice; n != nil && (n.Type == "exit" || n.Type == "error") {
			t.Fatalf("the run ended before a line: %+v %+v %+v (got %q)", n, n.Exit, n.Error, line)
		}
		if m.Notice == nil && m.Stream == client.RunStdout {
			line = append(line, m.Data...)
		}
	}
	return string(line)
}

func TestRunAnEchoREPLLineByLine(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	api := client.New(n.url, n.token)
	repl := "import sys\nprint('ready')\nfor line in sys.stdin:\n    print('echo:', line.strip())\n    print('seen', len(line), file=sys.stderr)\nsys.exit(4)\n"
	conn := runOf(t, api, repl, client.RunStart{})
	ctx := context.Background()
	if got := nextStdout(t, conn); got != "ready\n" {
		t.Fatalf("first line %q", got)
	}
	// Each answer arrives before the next line is sent.
	for _, s := range []string{"one", "two", "three"} {
		if err := conn.Stdin(ctx, []byte(s+"\n")); err != nil {
			t.Fatal(err)
		}
		if got := nextStdout(t, conn); got != "echo: "+s+"\n" {
			t.Fatalf("answer to %q: %q", s, got)
		}
	}
	if err := conn.Control(ctx, client.RunControl{Type: "stdin", Data: "four\n"}); err != nil {
		t.Fatal(err)
	}
	conn.Control(ctx, client.RunControl{Type: "eof"})
	tr := readRun(t, conn)
	if tr.stdout.String() != "echo: four\n" || !strings.Contains(tr.stderr.String(), "seen 5") {
		t.Fatalf("after the last line: stdout %q stderr %q", tr.stdout.String(), tr.stderr.String())
	}
	if tr.exit == nil || tr.exit.Code != 4 || tr.exit.Verdict != "" || tr.exit.WallMS <= 0 || tr.exit.MaxMemoryBytes <= 0 {
		t.Fatalf("exit %+v", tr.exit)
	}

	// The run is recorded like an invocation, trigger run, with the
	// transcript's tail.
	waitFor(t, patience, "the run's record", func() bool {
		var recs []client.Invocation
		r := n.cli("", "invocations", "-o", "json")
		if json.Unmarshal([]byte(r.stdout), &recs) != nil {
			return false
		}
		for _, rec := range recs {
			if rec.Trigger == "run" && rec.Status == client.StatusFailed && rec.ErrorType == "Run.NonZeroExit" && strings.Contains(rec.LogTail, "echo: four") {
				return true
			}
		}
		return false
	})

	// The CLI: piped stdin, the program's exit status.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "upper.py"), []byte("import sys, helper\nfor l in sys.stdin:\n    print(helper.shout(l.strip()))\nsys.exit(len(sys.argv) - 1)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "helper.py"), []byte("def shout(s):\n    return s.upper() + '!'\n"), 0o644)
	r := n.cliIn(dir, "a\nb\n", "run", "upper.py", "--with", "helper.py", "--", "x", "y")
	if r.code != 2 || r.stdout != "A!\nB!\n" {
		t.Fatalf("nimbus run: %+v", r)
	}
	// A program's uncaught exception reads as it would from python: its
	// own frames, status 1; __name__, __file__ and argv as for a script.
	// (The first run of a runtime starts a sandbox, later ones take one
	// started ahead: both behave the same.)
	for i := 0; i < 2; i++ {
		r := n.cliIn(dir, "", "run", "upper.py", "--with", "helper.py", "--stdin-from", "/dev/null", "--env", "GREETING=hi")
		if r.code != 0 {
			t.Fatalf("run %d: %+v", i, r)
		}
		os.WriteFile(filepath.Join(dir, "raises.py"), []byte("import os, sys\nprint(__name__, __file__, sys.argv[1:], os.environ['GREETING'], os.environ['NIMBUS_RUN_ID'] != '')\nraise ValueError('boom')\n"), 0o644)
		r = n.cliIn(dir, "", "run", "raises.py", "--env", "GREETING=hi", "--", "a", "b")
		if r.code != 1 || r.stdout != "__main__ /var/task/raises.py ['a', 'b'] hi True\n" || !strings.Contains(r.stderr, "File \"/var/task/raises.py\", line 3, in <module>") ||
			strings.Contains(r.stderr, "runstart") || !strings.Contains(r.stderr, "ValueError: boom") {
			t.Fatalf("run %d of a program that raises: %+v", i, r)
		}
	}
	// The README's example program.
	if r := n.cli("50\n25\n30\n", "run", "../examples/run/number.py", "--", "30"); r.code != 0 || r.stdout != "I am thinking of a number from 1 to 100. Your guess?\nLower.\nHigher.\nRight, in 3 tries.\n" {
		t.Fatalf("examples/run/number.py: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from a file\n"), 0o644)
	if r := n.cliIn(dir, "ignored\n", "run", "upper.py", "--with", "helper.py", "--stdin-from", "in.txt"); r.code != 0 || r.stdout != "FROM A FILE!\n" {
		t.Fatalf("nimbus run --stdin-from: %+v", r)
	}
}

func TestRunLimitsHoldWhileStreaming(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	api := client.New(n.url, n.token)
	before := rssOf(t, n.cmd.Process.Pid)

	// 100 MB of output against the default 1 MB limit: the client gets
	// exactly the limit, and the server never holds the rest.
	flood := "import sys\nblock = 'x' * 65536\nfor _ in range(1600):\n    sys.stdout.write(block)\n"
	tr := readRun(t, runOf(t, api, flood, client.RunStart{}))
	if tr.exit == nil || tr.exit.Verdict != "Sandbox.OutputLimitExceeded" || tr.stdout.Len() != 1<<20 || tr.exit.OutputBytes != 1<<20 {
		t.Fatalf("flood: %d bytes, exit %+v", tr.stdout.Len(), tr.exit)
	}
	if grown := rssOf(t, n.cmd.Process.Pid) - before; grown > 64<<20 {
		t.Fatalf("the server grew by %d MB streaming a 1 MB-limited flood", grown>>20)
	}

	for _, c := range []struct {
		name, src, verdict string
		start              client.RunStart
	}{
		{"a sleep past its timeout", "import time\ntime.sleep(600)\n", "Sandbox.Timeout", client.RunStart{Timeout: client.Duration(time.Second)}},
		{"a silent wait past its idle timeout", "import sys\nsys.stdin.read()\n", "Sandbox.IdleTimeout", client.RunStart{IdleTimeout: client.Duration(time.Second)}},
		{"a memory hog", "a = []\nwhile True:\n    a.append(bytearray(8 << 20))\n", "Sandbox.OutOfMemory", client.RunStart{}},
		{"a fork bomb", "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n", "Sandbox.Timeout", client.RunStart{Timeout: client.Duration(3 * time.Second)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := readRun(t, runOf(t, api, c.src, c.start))
			if tr.exit == nil || tr.exit.Verdict != c.verdict {
				t.Fatalf("exit %+v, want verdict %s (stderr %q)", tr.exit, c.verdict, tail(tr.stderr.String()))
			}
		})
	}
	// The platform still runs programs after all of them.
	if tr := readRun(t, runOf(t, api, "print('still here')\n", client.RunStart{})); tr.stdout.String() != "still here\n" || tr.exit.Code != 0 {
		t.Fatalf("after the limits: %q %+v", tr.stdout.String(), tr.exit)
	}
}

func TestARunWaitsForASlowClientAndLosesNothing(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	api := client.New(n.url, n.token)
	before := rssOf(t, n.cmd.Process.Pid)
	// 16 MB, numbered lines, as fast as the program can write them.
	src := "import sys\nfor i in range(200000):\n    sys.stdout.write('%07d %s\\n' % (i, 'y' * 72))\nprint('wrote it all', file=sys.stderr)\n"
	conn := runOf(t, api, src, client.RunStart{OutputLimit: 32 << 20, Timeout: client.Duration(10 * time.Minute)})
	ctx := context.Background()
	// Read a little, then nothing for a while: the program blocks on its
	// full pipe instead of filling the server's memory.
	for i := 0; i < 10; i++ {
		if _, err := conn.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pause := time.NewTimer(3 * time.Second)
	<-pause.C
	if grown := rssOf(t, n.cmd.Process.Pid) - before; grown > 64<<20 {
		t.Fatalf("the server grew by %d MB while its client did not read", grown>>20)
	}
	tr := readRun(t, conn)
	lines := strings.Split(strings.TrimSuffix(tr.stdout.String(), "\n"), "\n")
	if tr.exit == nil || tr.exit.Code != 0 || tr.exit.Verdict != "" || !strings.Contains(tr.stderr.String(), "wrote it all") {
		t.Fatalf("the slow client's run: exit %+v, stderr %q", tr.exit, tr.stderr.String())
	}
	// Every line after the first chunks arrived, whole and in order.
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "0199999 ") || len(last) != 80 {
		t.Fatalf("the last line %q", last)
	}
	for i := 1; i < len(lines)-1; i++ {
		a, _ := strconv.Atoi(lines[i][:7])
		b, _ := strconv.Atoi(lines[i+1][:7])
		if b != a+1 {
			t.Fatalf("line %d (%q) follows %q", b, lines[i+1][:7], lines[i][:7])
		}
	}
}

func TestARunEndsWhenItsClientGoesAndOnInterrupt(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--slots", "1")
	api := client.New(n.url, n.token)
	ctx := context.Background()

	// Interrupt arrives as KeyboardInterrupt.
	conn := runOf(t, api, "import time\ntry:\n    print('ready')\n    time.sleep(600)\nexcept KeyboardInterrupt:\n    print('interrupted')\n", client.RunStart{})
	nextStdout(t, conn)
	conn.Control(ctx, client.RunControl{Type: "signal", Signal: "interrupt"})
	if tr := readRun(t, conn); tr.stdout.String() != "interrupted\n" || tr.exit.Code != 0 {
		t.Fatalf("interrupt: %q %+v", tr.stdout.String(), tr.exit)
	}

	// A client that goes away ends its run, and the one slot frees.
	marker := fmt.Sprintf("gone_%d.py", time.Now().UnixNano())
	conn = runOf(t, api, "", client.RunStart{Files: map[string]string{marker: "import time\nheld = open(__file__)  # the test finds the process by it\nprint('ready')\ntime.sleep(600)\n"}, Entry: marker})
	nextStdout(t, conn)
	if !processRuns(marker) {
		t.Fatal("the run's process is not to be seen")
	}
	conn.Close()
	waitFor(t, patience, "the run's process is gone", func() bool { return !processRuns(marker) })
	if tr := readRun(t, runOf(t, api, "print('next')\n", client.RunStart{})); tr.stdout.String() != "next\n" {
		t.Fatalf("the next run: %q %+v %+v", tr.stdout.String(), tr.exit, tr.err)
	}

	// Terminate ends a program that ignores interrupts.
	conn = runOf(t, api, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready')\ntime.sleep(600)\n", client.RunStart{})
	nextStdout(t, conn)
	conn.Control(ctx, client.RunControl{Type: "signal", Signal: "interrupt"})
	conn.Control(ctx, client.RunControl{Type: "signal", Signal: "terminate"})
	if tr := readRun(t, conn); tr.exit == nil || tr.exit.Verdict != "Run.Terminated" {
		t.Fatalf("terminate: %+v", tr.exit)
	}
}

func TestRunsQueueWhenEverySlotIsBusy(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--slots", "1")
	api := client.New(n.url, n.token)
	ctx := context.Background()
	holder := runOf(t, api, "import sys\nprint('holding')\nsys.stdin.read()\n", client.RunStart{})
	nextStdout(t, holder)

	waiting := make([]*client.RunConn, 64) // the namespace's queue limit
	for i := range waiting {
		waiting[i] = runOf(t, api, fmt.Sprintf("print('run %d')\n", i), client.RunStart{})
		m, err := waiting[i].Next(ctx)
		if err != nil || m.Notice == nil || m.Notice.Type != "queued" || m.Notice.Position != i+1 {
			t.Fatalf("run %d: %+v %v, want queued at %d", i, m.Notice, err, i+1)
		}
	}
	// The queue is full: refused before the upgrade, 429 with Retry-After.
	_, err := api.Run(ctx, client.RunStart{Files: map[string]string{"main.py": "print(1)\n"}})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.RetryAfter <= 0 {
		t.Fatalf("a run past the queue: %v, want 429 with Retry-After", err)
	}
	holder.Control(ctx, client.RunControl{Type: "eof"})
	readRun(t, holder)
	// They run in their order, each when the one before it ends.
	for i, c := range waiting {
		if tr := readRun(t, c); tr.stdout.String() != fmt.Sprintf("run %d\n", i) || tr.exit == nil || tr.exit.Code != 0 {
			t.Fatalf("queued run %d: %q %+v %+v", i, tr.stdout.String(), tr.exit, tr.err)
		}
	}
}

func TestBadRunsAreRefusedWithAClearError(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	api := client.New(n.url, n.token)
	for _, c := range []struct {
		name  string
		start client.RunStart
		want  string
	}{
		{"no files", client.RunStart{Files: map[string]string{}}, "needs files"},
		{"an entry that is not among the files", client.RunStart{Files: map[string]string{"a.py": ""}, Entry: "b.py"}, "not one of the run's files"},
		{"a file name climbing out", client.RunStart{Files: map[string]string{"../x.py": ""}, Entry: "../x.py"}, "clean relative path"},
		{"a timeout over 15 minutes", client.RunStart{Files: map[string]string{"main.py": ""}, Timeout: client.Duration(time.Hour)}, "timeout"},
		{"memory under the minimum", client.RunStart{Files: map[string]string{"main.py": ""}, MemoryMB: 16}, "memory 16 MB"},
		{"an output limit over 64 MB", client.RunStart{Files: map[string]string{"main.py": ""}, OutputLimit: 1 << 30}, "output limit"},
		{"a runtime no worker has", client.RunStart{Files: map[string]string{"main.py": ""}, Runtime: "python2.7"}, "no worker offers runtime python2.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := readRun(t, runOf(t, api, "", c.start))
			if tr.err == nil || tr.err.Status != http.StatusBadRequest || !strings.Contains(tr.err.Error.Message, c.want) {
				t.Fatalf("got %+v (error %+v), want a 400 saying %q", tr.notices, tr.err, c.want)
			}
		})
	}
	// Nothing was recorded of the runs refused.
	if r := n.mustCLI(0, "invocations", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("refused runs were recorded: %s", r.stdout)
	}
	// Messages the protocol does not have end the run with a close code
	// and the reason; the program is gone.
	for _, c := range []struct {
		name   string
		send   func(ctx context.Context, conn *client.RunConn) error
		code   websocket.StatusCode
		reason string
	}{
		{"an unknown control message", func(ctx context.Context, conn *client.RunConn) error {
			return conn.Control(ctx, client.RunControl{Type: "launch"})
		}, websocket.StatusPolicyViolation, "not stdin, eof or signal"},
		{"an unknown signal", func(ctx context.Context, conn *client.RunConn) error {
			return conn.Control(ctx, client.RunControl{Type: "signal", Signal: "hangup"})
		}, websocket.StatusPolicyViolation, "not interrupt or terminate"},
		{"a message over 64 KB", func(ctx context.Context, conn *client.RunConn) error {
			return conn.Stdin(ctx, make([]byte, 65<<10))
		}, websocket.StatusMessageTooBig, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			marker := fmt.Sprintf("bad_%d.py", time.Now().UnixNano())
			conn := runOf(t, api, "", client.RunStart{Files: map[string]string{marker: "import time\nheld = open(__file__)  # the test finds the process by it\nprint('ready')\ntime.sleep(600)\n"}, Entry: marker})
			nextStdout(t, conn)
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			c.send(ctx, conn)
			var err error
			for err == nil {
				_, err = conn.Next(ctx)
			}
			if websocket.CloseStatus(err) != c.code || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("closed with %v, want %v saying %q", err, c.code, c.reason)
			}
			waitFor(t, patience, "the run's process is gone", func() bool { return !processRuns(marker) })
		})
	}
	// No key: 401 before the upgrade; another namespace's key: 403.
	_, err := client.New(n.url, "").Run(context.Background(), client.RunStart{Files: map[string]string{"main.py": ""}})
	if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("a run without a key: %v, want 401", err)
	}
	n.mustCLI(0, "namespaces", "create", "team")
	teamKey := n.newKey(t, "--role", "developer", "--namespace", "team")
	_, err = client.New(n.url, teamKey.Secret, client.WithNamespace("default")).Run(context.Background(), client.RunStart{Files: map[string]string{"main.py": ""}})
	if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("a team key's run in default: %v, want 403", err)
	}

	// A run the key may not start: a read-only key is refused before the upgrade.
	key := n.newKey(t, "--role", "viewer")
	_, err = client.New(n.url, key.Secret).Run(context.Background(), client.RunStart{Files: map[string]string{"main.py": ""}})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("a reader's run: %v, want 403", err)
	}
}

func TestARunThroughAFollowerOnARemoteWorker(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	follower := (c.leader() + 1) % 3
	api := client.New("http://"+c.servers[follower].addr, c.token)
	waitFor(t, patience, "the worker registers with the follower", func() bool {
		cl, err := c.clusterView(follower)
		return err == nil && len(cl.Workers) == 1 && cl.Workers[0].Healthy
	})
	conn := runOf(t, api, "import sys\nfor l in sys.stdin:\n    print(l.strip()[::-1])\n", client.RunStart{})
	ctx := context.Background()
	for _, s := range []string{"abc", "nimbus"} {
		conn.Stdin(ctx, []byte(s+"\n"))
		want := []rune(s)
		for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
			want[i], want[j] = want[j], want[i]
		}
		if got := nextStdout(t, conn); got != string(want)+"\n" {
			t.Fatalf("%q: got %q", s, got)
		}
	}
	conn.Control(ctx, client.RunControl{Type: "eof"})
	if tr := readRun(t, conn); tr.exit == nil || tr.exit.Code != 0 || tr.exit.Worker == "" {
		t.Fatalf("exit %+v", tr.exit)
	}
	// More output than the relay's window, through the server.
	tr := readRun(t, runOf(t, api, "import sys\nfor i in range(20000):\n    print(i)\n", client.RunStart{}))
	if got := strings.Count(tr.stdout.String(), "\n"); got != 20000 || tr.exit.Code != 0 {
		t.Fatalf("%d lines, exit %+v", got, tr.exit)
	}
	// A client that goes away ends the run on the worker.
	marker := fmt.Sprintf("remote_gone_%d.py", time.Now().UnixNano())
	conn = runOf(t, api, "", client.RunStart{Files: map[string]string{marker: "import time\nheld = open(__file__)  # the test finds the process by it\nprint('ready')\ntime.sleep(600)\n"}, Entry: marker})
	nextStdout(t, conn)
	conn.Close()
	waitFor(t, patience, "the remote run's process is gone", func() bool { return !processRuns(marker) })
}

// processRuns reports whether a process on this host holds a file
// named name open (a run's program holds its own file open: its command
// line may be the run starter's).
func processRuns(name string) bool {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.Contains(target, name) {
			return true
		}
	}
	return false
}

// rssOf is process pid's resident set size in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestFiftyRunsQueueOnFourSlotsAndAllComplete(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--slots", "4")
	api := client.New(n.url, n.token)
	const runs, slots = 50, 4
	type outcome struct {
		positions []int
		exit      *client.RunExit
		out       string
		err       error
	}
	var (
		mu      sync.Mutex
		queued  = map[int]bool{} // first positions seen
		started int
	)
	release := make(chan struct{})
	results := make(chan outcome, runs)
	prog := "import sys\nprint('running')\nsys.stdin.readline()\nprint('done')\n"
	for i := 0; i < runs; i++ {
		go func() {
			var o outcome
			defer func() { results <- o }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
			defer cancel()
			conn, err := api.Run(ctx, client.RunStart{Files: map[string]string{"main.py": prog}})
			if err != nil {
				o.err = err
				return
			}
			defer conn.Close()
			var out bytes.Buffer
			for {
				m, err := conn.Next(ctx)
				if err != nil {
					o.err = err
					return
				}
				if m.Notice == nil {
					out.Write(m.Data)
					continue
				}
				switch m.Notice.Type {
				case "queued":
					mu.Lock()
					if len(o.positions) == 0 {
						queued[m.Notice.Position] = true
					}
					mu.Unlock()
					o.positions = append(o.positions, m.Notice.Position)
				case "started":
					mu.Lock()
					started++
					mu.Unlock()
					<-release // every run is in before any ends
					conn.Stdin(ctx, []byte("go\n"))
				case "exit":
					o.exit, o.out = m.Notice.Exit, out.String()
					return
				case "error":
					o.err = m.Notice.Error
					return
				}
			}
		}()
	}
	waitFor(t, patience, "4 runs running and 46 waiting", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return started == slots && len(queued) == runs-slots
	})
	close(release)
	for i := 0; i < runs; i++ {
		o := <-results
		if o.err != nil || o.exit == nil || o.exit.Code != 0 || o.out != "running\ndone\n" {
			t.Fatalf("a run: %v, exit %+v, output %q", o.err, o.exit, o.out)
		}
		// A waiting run's place only moves forward, one notice per move.
		for k := 1; k < len(o.positions); k++ {
			if o.positions[k] >= o.positions[k-1] {
				t.Fatalf("positions %v do not move forward", o.positions)
			}
		}
	}
	// The waiting runs took the places 1 to 46, one each.
	for p := 1; p <= runs-slots; p++ {
		if !queued[p] {
			t.Fatalf("no run was first told place %d: %v", p, queued)
		}
	}
}

func TestARunOfAFunctionsCodeWithItsLayers(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	layer := writeTree(t, map[string]string{"python/greet.py": "def hello(name):\n    return 'hello, ' + name\n"})
	n.mustCLI(0, "layers", "publish", "greet", layer)
	fn := writeTree(t, map[string]string{
		"main.py":     "import greet\ndef handler(event, context):\n    return greet.hello(event['name'])\nif __name__ == '__main__':\n    print('main as a script')\n",
		"tool.py":     "import sys, main\nfor line in sys.stdin:\n    print(main.handler({'name': line.strip()}, None))\nprint(sys.argv[1:])\n",
		"nimbus.yaml": "name: greeter\nmemory: 256\n",
	})
	n.mustCLI(0, "deploy", fn, "--layer", "greet:1")

	// The package's tool imports its handler module, which imports the layer.
	r := n.cli("ada\nbob\n", "run", "--function", "greeter", "tool.py", "--", "x")
	if r.code != 0 || r.stdout != "hello, ada\nhello, bob\n['x']\n" {
		t.Fatalf("run of greeter's tool.py: %+v", r)
	}
	// Without an entry, the handler's module runs as __main__.
	if r := n.mustCLI(0, "run", "--function", "greeter"); r.stdout != "main as a script\n" {
		t.Fatalf("run of greeter: %+v", r)
	}
	// The run is recorded under the function.
	waitFor(t, patience, "the function's run record", func() bool {
		var recs []client.Invocation
		r := n.cli("", "invocations", "greeter", "-o", "json")
		return json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 2 && recs[0].Trigger == "run" && recs[0].MemoryMB == 256
	})
	// An entry the package does not have, a function that does not exist,
	// files beside a function: refused with the reason.
	if r := n.cli("", "run", "--function", "greeter", "absent.py"); r.code != 3 || !strings.Contains(r.stderr, "has no file absent.py") {
		t.Fatalf("an absent entry: %+v", r)
	}
	if r := n.cli("", "run", "--function", "nosuch"); r.code != 3 || !strings.Contains(r.stderr, "nosuch") {
		t.Fatalf("an absent function: %+v", r)
	}
	if r := n.cli("", "run", "--function", "greeter", "--with", "x.py"); r.code != 2 {
		t.Fatalf("--with beside --function: %+v", r)
	}
}
