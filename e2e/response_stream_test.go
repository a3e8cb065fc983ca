package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// streamer yields a first chunk, then, asked to, waits far longer than
// any test: a client that sees the first chunk sees it while the handler
// still runs.
const streamer = `
import time
def handler(event, context):
    def gen():
        yield "first\n"
        if event.get("hang"):
            time.sleep(600)
        for i in range(event.get("n", 0)):
            yield "line %d\n" % i
        if event.get("fail"):
            raise KeyError("mid-stream")
    return gen()
`

// firstChunk invokes fn with event through api, streamed, and returns the
// first chunk it receives; the call is cancelled then (the client goes
// away).
func firstChunk(t *testing.T, api *client.Client, fn, event string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	stop := errors.New("got the first chunk")
	var first []byte
	_, err := api.InvokeStream(ctx, fn, []byte(event), func(b []byte) error {
		first = append(first, b...)
		if bytes.HasSuffix(first, []byte("\n")) {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("no first chunk while the handler runs: %v (got %q)", err, first)
	}
	return string(first)
}

func TestAGeneratorHandlerStreamsItsResult(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "streamer", streamer), "--timeout", "15m")
	api := client.New(n.url, n.token)

	// The first chunk arrives while the handler still runs.
	if got := firstChunk(t, api, "streamer", `{"hang": true}`); got != "first\n" {
		t.Fatalf("first chunk %q", got)
	}

	// The whole stream, through the CLI.
	r := n.mustCLI(0, "invoke", "streamer", "--stream", "--data", `{"n": 3}`)
	if r.stdout != "first\nline 0\nline 1\nline 2\n" {
		t.Fatalf("streamed: %q", r.stdout)
	}
	// A failure after the stream began: exit 1, the error type named.
	r = n.cli("", "invoke", "streamer", "--stream", "--data", `{"n": 1, "fail": true}`)
	if r.code != 1 || r.stdout != "first\nline 0\n" || !strings.Contains(r.stderr, "KeyError") {
		t.Fatalf("failed mid-stream: %+v", r)
	}
	// The README's example.
	n.mustCLI(0, "deploy", "../examples/ticker")
	if r := n.mustCLI(0, "invoke", "ticker", "--stream", "--data", `{"steps": 2, "delay": 0}`); !strings.HasPrefix(r.stdout, "starting 2 steps\nstep 1 of 2 done") || !strings.HasSuffix(r.stdout, "finished\n") {
		t.Fatalf("examples/ticker: %q", r.stdout)
	}
	// A caller that does not stream gets the chunks joined.
	if r := n.mustCLI(0, "invoke", "streamer", "--data", `{"n": 1}`); r.stdout != "first\nline 0\n" {
		t.Fatalf("not streamed: %q", r.stdout)
	}
	// A plain handler answers a streaming caller as it always does.
	n.mustCLI(0, "deploy", writeFunction(t, t.TempDir(), "plain", okHandler))
	if r := n.mustCLI(0, "invoke", "plain", "--stream"); !strings.HasPrefix(r.stdout, "{") {
		t.Fatalf("a plain result streamed: %q", r.stdout)
	}

	// Server-sent events: a chunk event per chunk, then the end.
	req, _ := http.NewRequest("POST", n.url+"/v1/functions/streamer/invoke", strings.NewReader(`{"n": 1, "fail": true}`))
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if e, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, e)
		}
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(d, "error_type") && !strings.Contains(d, `"KeyError"`) {
			t.Fatalf("end event %q", d)
		}
	}
	if strings.Join(events, ",") != "chunk,chunk,end" {
		t.Fatalf("events %v", events)
	}
}

func TestAStreamedResultCrossesFromARemoteWorker(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 1)
	c.mustCLI(0, 0, "deploy", writeFunction(t, t.TempDir(), "streamer", streamer), "--timeout", "15m")
	api := client.New("http://"+c.servers[0].addr, c.token)
	waitFor(t, patience, "the worker registers", func() bool {
		cl, err := c.clusterView(0)
		return err == nil && len(cl.Workers) == 1 && cl.Workers[0].Healthy
	})
	if got := firstChunk(t, api, "streamer", `{"hang": true}`); got != "first\n" {
		t.Fatalf("first chunk %q", got)
	}
	// While the hung invocation is being ended, a worker on a busy
	// machine may refuse more work for its CPU pressure (a worker with an
	// invocation running admits by PSI): a 429, which a client retries.
	var all bytes.Buffer
	var res client.InvokeResult
	var err error
	waitFor(t, patience, "the stream is taken", func() bool {
		all.Reset()
		res, err = api.InvokeStream(context.Background(), "streamer", []byte(`{"n": 2000}`), func(b []byte) error {
			_, err := all.Write(b)
			return err
		})
		var apiErr *client.APIError
		return !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests
	})
	if err != nil || res.FunctionError != "" || strings.Count(all.String(), "\n") != 2001 {
		t.Fatalf("%v %+v: %d lines", err, res, strings.Count(all.String(), "\n"))
	}
	// The hung invocation's client went away: its slot is free again.
	waitFor(t, patience, "the worker's slots free", func() bool {
		cl, err := c.clusterView(0)
		return err == nil && len(cl.Workers) == 1 && cl.Workers[0].InUse == 0
	})
}
