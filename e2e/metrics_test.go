package e2e

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// invocationsCounted reads nimbus_invocations_total of function fn (in the
// default namespace) with the given trigger and outcome from /metrics: 0
// when the series does not exist yet.
func (n *devNode) invocationsCounted(fn, trigger, outcome string) int {
	n.t.Helper()
	status, _, b := n.do("GET", "/metrics", "", nil)
	if status != 200 {
		n.t.Fatalf("GET /metrics: %d %s", status, b)
	}
	re := regexp.MustCompile(`(?m)^nimbus_invocations_total\{function="` + regexp.QuoteMeta(fn) +
		`",namespace="default",outcome="` + regexp.QuoteMeta(outcome) + `",trigger="` + regexp.QuoteMeta(trigger) + `"\} (\d+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// metricsText is /metrics as text.
func (n *devNode) metricsText() string {
	n.t.Helper()
	_, _, b := n.do("GET", "/metrics", "", nil)
	return string(b)
}

func TestMetricsCountEveryTrigger(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("counted", okHandler, nil)
	n.mustDeploy("catcher", okHandler, nil)
	n.mustDeploy("boom", raisingHandler, map[string]any{"retries": 0, "retry_delay": "1s",
		"destinations": map[string]string{"on_failure": "function:catcher"}})

	// sync
	n.mustCLI(0, "invoke", "counted")

	// async
	status, id := n.asyncInvoke("counted", []byte(`{}`))
	if status != 202 {
		t.Fatalf("async invoke: %d", status)
	}
	n.waitRecord(id, 30*time.Second, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })

	// schedule
	n.mustCLI(0, "schedules", "create", "metered", "--function", "counted", "--expression", "@every 1s")
	waitFor(t, 30*time.Second, "a scheduled run of counted succeeds", func() bool {
		for _, r := range n.invocations("counted") {
			if strings.HasPrefix(r.Trigger, "schedule:") && r.Status == client.StatusSuccess {
				return true
			}
		}
		return false
	})
	n.mustCLI(0, "schedules", "rm", "metered")

	// async failure, its destination, then a redrive
	status, failed := n.asyncInvoke("boom", []byte(`{}`))
	if status != 202 {
		t.Fatalf("async invoke: %d", status)
	}
	isDead := func(r client.Invocation) bool { return r.Status == client.StatusDeadLetter }
	n.waitRecord(failed, 30*time.Second, "is a dead letter", isDead)
	n.mustCLI(0, "deadletters", "redrive", failed)
	n.waitRecord(failed, 30*time.Second, "is a dead letter again after its redrive", isDead)
	waitFor(t, 30*time.Second, "the catcher ran from its destination", func() bool {
		for _, r := range n.invocations("catcher") {
			if strings.HasPrefix(r.Trigger, "destination:") && r.Status == client.StatusSuccess {
				return true
			}
		}
		return false
	})

	// Each run was counted once, under its trigger, before its record
	// showed its end.
	exact := []struct {
		fn, trigger, outcome string
		want                 int
	}{
		{"counted", "sync", "success", 1},
		{"counted", "async", "success", 1},
		{"boom", "async", "error", 1},
		{"boom", "redrive", "error", 1},
	}
	for _, c := range exact {
		if got := n.invocationsCounted(c.fn, c.trigger, c.outcome); got != c.want {
			t.Errorf("%s trigger=%s outcome=%s counted %d times, want %d", c.fn, c.trigger, c.outcome, got, c.want)
		}
	}
	if got := n.invocationsCounted("counted", "schedule", "success"); got < 1 {
		t.Errorf("scheduled runs of counted are not counted under trigger=\"schedule\"")
	}
	if got := n.invocationsCounted("catcher", "destination", "success"); got < 1 {
		t.Errorf("the destination's run of catcher is not counted under trigger=\"destination\"")
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", n.metricsText())
	}
}

const sleepyHandler = `import time

def handler(event, context):
    time.sleep(event.get("s", 0))
    return {"slept": event.get("s", 0)}
`

func TestClientThatHangsUpIsCountedAsClientClosed(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("sleepy", sleepyHandler, map[string]any{"timeout": "60s"})

	inFlight := regexp.MustCompile(`(?m)^nimbus_invocations_in_flight (\d+)$`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", n.url+"/v1/functions/sleepy/invoke", bytes.NewReader([]byte(`{"s": 50}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Hang up once the invocation runs.
	waitFor(t, 30*time.Second, "the invocation is in flight", func() bool {
		m := inFlight.FindStringSubmatch(n.metricsText())
		return m != nil && m[1] == "1"
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatalf("the request answered although its client hung up")
	}

	waitFor(t, 30*time.Second, "the hang-up is counted as ClientClosed", func() bool {
		return n.invocationsCounted("sleepy", "sync", "ClientClosed") == 1
	})
	if got := n.invocationsCounted("sleepy", "sync", "InternalError"); got != 0 {
		t.Errorf("a client hanging up counted %d InternalError", got)
	}
	for _, line := range strings.Split(n.out.String(), "\n") {
		if strings.Contains(line, "ERROR") && strings.Contains(line, "context canceled") {
			t.Errorf("a client hanging up is logged as an error: %s", line)
		}
	}
	if !strings.Contains(n.out.String(), "the client went away before its answer") {
		t.Errorf("the hang-up is not logged:\n%s", n.out.String())
	}
}
