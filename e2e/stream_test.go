package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseLines opens a server-sent event stream and sends its data lines to
// the returned channel until the test ends.
func (n *devNode) sseLines(t *testing.T, path string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				out <- d
			}
		}
	}()
	return out
}

// TestLiveLogsAndEvents follows a function's logs and the event stream
// while it is invoked.
func TestLiveLogsAndEvents(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0")
	if status, e := n.deployJSON("talker", map[string]any{}, zipOf(t, map[string]string{"main.py": "def handler(e, c):\n    print('said', e.get('n'))\n    return e\n"})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	logs := n.sseLines(t, "/v1/functions/talker/logs?follow=1")
	events := n.sseLines(t, "/v1/events?function=talker")
	n.mustCLI(0, "invoke", "talker", "--data", `{"n": 41}`)
	n.mustCLI(0, "invoke", "talker", "--data", `{"n": 42}`, "--async")
	want := map[string]bool{"said 41": false, "said 42": false}
	deadline := time.After(patience)
	for !want["said 41"] || !want["said 42"] {
		select {
		case l := <-logs:
			for k := range want {
				if strings.Contains(l, k) {
					want[k] = true
				}
			}
		case <-deadline:
			t.Fatalf("followed logs never showed both invocations: %v", want)
		}
	}
	statuses := map[string]bool{}
	for !statuses["success"] || !statuses["queued"] {
		select {
		case e := <-events:
			for _, s := range []string{"success", "queued", "running"} {
				if strings.Contains(e, `"status":"`+s+`"`) {
					statuses[s] = true
				}
			}
		case <-deadline:
			t.Fatalf("the event stream never showed queued and success: %v", statuses)
		}
	}
}
