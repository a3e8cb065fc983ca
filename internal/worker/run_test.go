package worker

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// startRun starts a one-file run of src on w; it is closed when the test
// ends.
func startRun(t *testing.T, w *Worker, src string, limits RunLimits) *Run {
	t.Helper()
	r, err := w.StartRun(context.Background(), RunSpec{ID: "r1", Files: map[string][]byte{"main.py": []byte(src)}, Entry: "main.py", Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// collect reads r's events to its exit: the output of each stream and
// the exit.
func collect(t *testing.T, r *Run) (stdout, stderr string, exit *RunExit) {
	t.Helper()
	var out [3]bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		ev, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("next: %v (output so far %q %q)", err, out[Stdout].String(), out[Stderr].String())
		}
		if ev.Exit != nil {
			return out[Stdout].String(), out[Stderr].String(), ev.Exit
		}
		if len(ev.Data) == 0 || len(ev.Data) > RunChunk {
			t.Fatalf("a chunk of %d bytes", len(ev.Data))
		}
		out[ev.Stream].Write(ev.Data)
	}
}

// nextLine reads r's stdout until it holds a whole line.
func nextLine(t *testing.T, r *Run) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var line []byte
	for !bytes.HasSuffix(line, []byte("\n")) {
		ev, err := r.Next(ctx)
		if err != nil || ev.Exit != nil {
			t.Fatalf("the run ended before a line: %v %+v (got %q)", err, ev.Exit, line)
		}
		if ev.Stream == Stdout {
			line = append(line, ev.Data...)
		}
	}
	return string(line)
}

func TestRunAnswersEachLineBeforeTheNextIsSent(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	r := startRun(t, w, "import sys\nfor line in sys.stdin:\n    print('echo:', line.strip())\nprint('bye', file=sys.stderr)\nsys.exit(3)\n", RunLimits{})
	for _, s := range []string{"one", "two", "three"} {
		if err := r.Input(RunInput{Stdin: []byte(s + "\n")}); err != nil {
			t.Fatal(err)
		}
		if got := nextLine(t, r); got != "echo: "+s+"\n" {
			t.Fatalf("got %q for %q", got, s)
		}
	}
	r.Input(RunInput{EOF: true})
	_, stderr, exit := collect(t, r)
	if stderr != "bye\n" || exit.Code != 3 || exit.Verdict != "" || exit.Wall <= 0 {
		t.Fatalf("stderr %q, exit %+v", stderr, exit)
	}
	if _, err := r.Next(context.Background()); err != io.EOF {
		t.Fatalf("after the exit: %v, want io.EOF", err)
	}
}

func TestRunOutputLimitCountsEveryByte(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	r := startRun(t, w, "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n", RunLimits{OutputBytes: 10000})
	stdout, _, exit := collect(t, r)
	if len(stdout) != 10000 || exit.Verdict != VerdictOutputLimit || exit.Output != 10000 {
		t.Fatalf("%d bytes, exit %+v", len(stdout), exit)
	}
}

func TestRunTimeoutAndIdleTimeoutEndIt(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 2})
	slow := startRun(t, w, "import time\nprint('started')\ntime.sleep(60)\n", RunLimits{Timeout: time.Second})
	idle := startRun(t, w, "import sys\nsys.stdin.read()\n", RunLimits{IdleTimeout: time.Second})
	if out, _, exit := collect(t, slow); out != "started\n" || exit.Verdict != VerdictTimeout || exit.Signal != "SIGKILL" {
		t.Fatalf("%q %+v", out, exit)
	}
	if _, _, exit := collect(t, idle); exit.Verdict != VerdictIdle {
		t.Fatalf("%+v", exit)
	}
}

func TestRunInterruptIsAKeyboardInterrupt(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	r := startRun(t, w, "import time\ntry:\n    print('ready')\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted')\n", RunLimits{})
	if got := nextLine(t, r); got != "ready\n" {
		t.Fatalf("got %q", got)
	}
	if err := r.Input(RunInput{Signal: SignalInterrupt}); err != nil {
		t.Fatal(err)
	}
	if out, _, exit := collect(t, r); out != "interrupted\n" || exit.Code != 0 || exit.Verdict != "" {
		t.Fatalf("%q %+v", out, exit)
	}
	if err := r.Input(RunInput{Signal: "hangup"}); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Fatalf("an unknown signal: %v", err)
	}
}

func TestRunCloseKillsItAndFreesTheSlot(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	r := startRun(t, w, "import time\nprint('ready')\ntime.sleep(60)\n", RunLimits{})
	nextLine(t, r)
	if _, err := w.StartRun(context.Background(), RunSpec{Files: map[string][]byte{"a.py": nil}, Entry: "a.py"}); err != ErrNoCapacity {
		t.Fatalf("a second run on one slot: %v, want ErrNoCapacity", err)
	}
	r.Close()
	select {
	case <-r.Exited():
	default:
		t.Fatal("Close returned before the program ended")
	}
	again := startRun(t, w, "print('again')\n", RunLimits{})
	if out, _, _ := collect(t, again); out != "again\n" {
		t.Fatalf("%q", out)
	}
}

func TestRunRefusesBadFiles(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	for _, spec := range []RunSpec{
		{},
		{Files: map[string][]byte{"../x.py": nil}, Entry: "../x.py"},
		{Files: map[string][]byte{"/x.py": nil}, Entry: "/x.py"},
		{Files: map[string][]byte{"a.py": nil}, Entry: "b.py"},
	} {
		if r, err := w.StartRun(context.Background(), spec); err == nil {
			r.Close()
			t.Fatalf("%+v started", spec)
		}
	}
}
