package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"nimbus/internal/sources/brokertest"
	"nimbus/pkg/client"
)

// batchHandler handles a batch of queue messages: it prints the numbers
// it handled on one line (so that the records' log tails say which ran)
// and names the poison messages in batchItemFailures.
const batchHandler = `import json

def handler(event, context):
    failures, handled = [], []
    for rec in event["Records"]:
        body = rec["body"]
        if body.get("poison"):
            failures.append({"itemIdentifier": rec["messageId"]})
        else:
            handled.append(body["n"])
    print("HANDLED " + json.dumps(handled))
    return {"batchItemFailures": failures}
`

var handledLine = regexp.MustCompile(`HANDLED (\[[0-9, ]*\])`)

// handledIn adds to seen the message numbers the records' logs say ran.
func handledIn(recs []client.Invocation, seen map[int]bool) {
	for _, r := range recs {
		if r.Status != client.StatusSuccess || !strings.HasPrefix(r.Trigger, "source:") {
			continue
		}
		for _, m := range handledLine.FindAllStringSubmatch(r.LogTail, -1) {
			var ns []int
			if json.Unmarshal([]byte(m[1]), &ns) == nil {
				for _, n := range ns {
					seen[n] = true
				}
			}
		}
	}
}

// rabbit is a RabbitMQ broker of a test with a client of its queues.
type rabbit struct {
	*brokertest.Broker
	*brokertest.Queues
}

func startRabbit(t *testing.T, queues ...string) *rabbit {
	b := brokertest.RabbitMQ(t)
	return &rabbit{Broker: b, Queues: b.Queues(queues...)}
}

func (n *devNode) source(name string) client.Source {
	n.t.Helper()
	r := n.mustCLI(0, "sources", "get", name, "-o", "json")
	var s client.Source
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		n.t.Fatalf("sources get -o json: %v\n%s", err, r.stdout)
	}
	return s
}

func TestRabbitMQSourceFeedsAFunctionAndDeadLettersThePoison(t *testing.T) {
	parallel(t)
	mq := startRabbit(t, "orders", "orders-dlq", "amounts")
	n := startDev(t, t.TempDir())
	n.mustDeploy("consume", batchHandler, nil)

	// The README's example: examples/batch, whose failed message becomes
	// a Nimbus dead letter (no --dead-letter).
	n.mustCLI(0, "deploy", "../examples/batch")
	n.mustCLI(0, "sources", "create", "amounts", "--function", "batch", "--type", "rabbitmq", "--url", mq.URL,
		"--queue", "amounts", "--retries", "1", "--retry-delay", "100ms")
	for _, m := range []string{`{"amount": 5}`, `{"amount": "lots"}`, `{"amount": 7}`} {
		mq.Publish("amounts", []byte(m))
	}
	waitFor(t, patience, "examples/batch handles two messages and dead-letters one", func() bool {
		p := n.source("amounts").Progress
		return p.Succeeded == 2 && p.DeadLettered == 1
	})
	if dls := n.deadLetters("batch"); len(dls) != 1 || !strings.Contains(string(dls[0].Event), `"lots"`) || dls[0].Trigger != "source:amounts" {
		t.Errorf("the dead letters of batch: %+v", dls)
	}

	// Bad input is refused with a sentence and stores nothing.
	for _, bad := range []struct{ args []string }{
		{[]string{"--type", "sqs", "--url", mq.URL, "--queue", "orders"}},
		{[]string{"--type", "rabbitmq", "--url", "http://127.0.0.1:1/", "--queue", "orders"}},
		{[]string{"--type", "rabbitmq", "--url", mq.URL}},
		{[]string{"--type", "rabbitmq", "--url", mq.URL, "--queue", "orders", "--batch-size", "20000"}},
		{[]string{"--type", "kafka", "--url", "127.0.0.1:9092", "--topic", "t", "--start-from", "yesterday"}},
	} {
		r := n.cli("", append([]string{"sources", "create", "bad", "--function", "consume"}, bad.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "400 BadRequest") {
			t.Errorf("sources create %v: exit %d, stderr %q", bad.args, r.code, r.stderr)
		}
	}
	if r := n.cli("", "sources", "create", "bad", "--function", "nowhere", "--type", "rabbitmq", "--url", mq.URL, "--queue", "orders"); r.code == 0 {
		t.Errorf("a mapping of a missing function was created")
	}
	var stored []client.Source
	if r := n.mustCLI(0, "sources", "ls", "-o", "json"); json.Unmarshal([]byte(r.stdout), &stored) != nil || len(stored) != 1 || stored[0].Name != "amounts" {
		t.Fatalf("bad creates stored mappings: %s", r.stdout)
	}

	n.mustCLI(0, "sources", "create", "orders", "--function", "consume", "--type", "rabbitmq", "--url", mq.URL,
		"--queue", "orders", "--batch-size", "50", "--retries", "1", "--retry-delay", "100ms", "--dead-letter", "orders-dlq")
	src := n.source("orders")
	if strings.Contains(src.URL, "guest:guest") || !strings.Contains(src.URL, "****") {
		t.Errorf("the password shows in the mapping's URL: %s", src.URL)
	}
	if r := n.mustCLI(0, "sources", "get", "orders"); strings.Contains(r.stdout, "guest:guest") {
		t.Errorf("sources get shows the password:\n%s", r.stdout)
	}

	const total = 1000
	for i := range total {
		mq.Publish("orders", fmt.Appendf(nil, `{"n": %d}`, i))
		if i == 500 {
			mq.Publish("orders", []byte(`{"n": -1, "poison": true}`))
			mq.Publish("orders", []byte(`not json {`))
		}
	}
	var p client.SourceProgress
	waitFor(t, patience, "the mapping reports every message handled and two dead-lettered", func() bool {
		p = n.source("orders").Progress
		return p.Succeeded == total && p.DeadLettered == 2
	})
	if p.Malformed != 1 || p.State != "running" || p.Received < total+2 {
		t.Errorf("progress %+v", p)
	}
	waitFor(t, patience, "the queue is drained and the dead-letter queue holds two", func() bool {
		return mq.Ready("orders") == 0 && mq.Ready("orders-dlq") == 2
	})
	seen := map[int]bool{}
	waitFor(t, patience, "the records' logs show every message ran", func() bool {
		handledIn(n.invocations("consume"), seen)
		return len(seen) == total
	})
	waitFor(t, patience, "/metrics counts the mapping's messages and its lag as 0", func() bool {
		metrics := n.metricsText()
		for _, want := range []string{
			`nimbus_source_messages_total{namespace="default",outcome="succeeded",source="orders"} 1000`,
			`nimbus_source_messages_total{namespace="default",outcome="dead_lettered",source="orders"} 2`,
			`nimbus_source_lag{namespace="default",source="orders"} 0`,
		} {
			if !strings.Contains(metrics, want) {
				return false
			}
		}
		return true
	})
	if n.invocationsCounted("consume", "source", "success") == 0 {
		t.Errorf("/metrics counts no invocation of consume with trigger source")
	}
	for _, r := range n.invocations("consume") {
		if r.Trigger != "source:orders" {
			t.Errorf("a record's trigger is %q, want source:orders", r.Trigger)
		}
	}
	if r := n.mustCLI(0, "invocations", "consume"); strings.Contains(r.stdout, "guest:guest") {
		t.Errorf("the password shows in the records")
	}

	// A function fed by a mapping is not removed without --force.
	if r := n.cli("", "rm", "consume"); r.code == 0 || !strings.Contains(r.stderr, "orders") {
		t.Errorf("rm of a function a mapping feeds: exit %d, %q", r.code, r.stderr)
	}
	n.mustCLI(0, "sources", "disable", "orders")
	if s := n.source("orders"); !s.Disabled {
		t.Errorf("disable left %+v", s)
	}
	n.mustCLI(0, "sources", "rm", "orders")
	if r := n.cli("", "sources", "get", "orders"); r.code == 0 {
		t.Errorf("a removed mapping is still there")
	}
}

func TestASourceWhoseBrokerIsUnreachableIsStoredAndSaysSo(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("consume", batchHandler, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "amqp://user:secret@" + ln.Addr().String() + "/"
	ln.Close() // nothing listens there now
	n.mustCLI(0, "sources", "create", "gone", "--function", "consume", "--type", "rabbitmq", "--url", url, "--queue", "q")
	var s client.Source
	waitFor(t, patience, "the mapping shows it cannot connect", func() bool {
		s = n.source("gone")
		return s.Progress.State == "connecting" && s.Progress.Error != ""
	})
	if strings.Contains(s.Progress.Error, "secret") || strings.Contains(n.out.String(), "secret") {
		t.Errorf("the password shows in the error or the log: %q", s.Progress.Error)
	}
}

// TestRabbitMQSourceLosesNothingWhenTheLeaderIsKilledMidStream kills the
// leader (whose consumer holds messages in flight) while messages
// arrive: every message is handled (the records' logs say so: a message
// is acknowledged only once its record is committed or held), the queue
// drains, and the next leader's consumer carries the progress on.
func TestRabbitMQSourceLosesNothingWhenTheLeaderIsKilledMidStream(t *testing.T) {
	parallel(t)
	mq := startRabbit(t, "orders")
	c := startCluster(t, 3, 2)
	c.deployEverywhere("consume", batchHandler, "")
	c.mustCLI(0, 0, "sources", "create", "orders", "--function", "consume", "--type", "rabbitmq", "--url", mq.URL,
		"--queue", "orders", "--batch-size", "10")

	const total = 600
	published := make(chan int, total)
	go func() {
		defer close(published)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range total {
			<-tick.C
			mq.Publish("orders", fmt.Appendf(nil, `{"n": %d}`, i))
			published <- i
		}
	}()
	for i := range published {
		if i == total/3 {
			c.killLeader()
		}
	}

	seen := map[int]bool{}
	var missing []int
	waitFor(t, patience, "the records show every message ran", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		recs, err := c.invocationsOn(l, "consume")
		if err != nil {
			return false
		}
		handledIn(recs, seen)
		missing = missing[:0]
		for i := range total {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		return len(missing) == 0
	})
	waitFor(t, patience, "the queue is drained", func() bool { return mq.Ready("orders") == 0 })
	var src client.Source
	waitFor(t, patience, "the next leader's consumer reports its progress", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		status, b, err := c.api(l, shortHTTP, "GET", "/v1/sources/orders", nil, nil)
		return err == nil && status == 200 && json.Unmarshal(b, &src) == nil &&
			src.Progress.State == "running" && src.Progress.Succeeded > 0
	})
	t.Logf("progress after the kill: %+v (a kill loses the counts of up to one report interval; redelivered: at most that many duplicates)", src.Progress)
}
