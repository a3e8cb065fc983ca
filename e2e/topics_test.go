package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// snsHandler returns what a subscriber got: the SNS-shaped record's
// source, topic, message ID, and the message decoded from its text.
const snsHandler = `import json

def handler(event, context):
    rec = event["Records"][0]
    return {"source": rec["EventSource"], "topic": rec["Sns"]["TopicArn"],
            "id": rec["Sns"]["MessageId"], "message": json.loads(rec["Sns"]["Message"])}
`

// snsResult is what snsHandler returns.
type snsResult struct {
	Source  string         `json:"source"`
	Topic   string         `json:"topic"`
	ID      string         `json:"id"`
	Message map[string]any `json:"message"`
}

// topic is `nimbus topics get NAME -o json`.
func (n *devNode) topic(name string) client.Topic {
	n.t.Helper()
	r := n.mustCLI(0, "topics", "get", name, "-o", "json")
	var t client.Topic
	if err := json.Unmarshal([]byte(r.stdout), &t); err != nil {
		n.t.Fatalf("topics get -o json: %v\n%s", err, r.stdout)
	}
	return t
}

// subscriberNames lists a topic's subscribers' functions.
func subscriberNames(t client.Topic) string {
	var names []string
	for _, s := range t.Subscribers {
		names = append(names, s.Function)
	}
	return strings.Join(names, ",")
}

func TestTopicFanOutRunsEachMatchingSubscriberOnceWithTheMessage(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	for _, fn := range []string{"audit", "books", "refunds"} {
		n.mustDeploy(fn, snsHandler, nil)
	}
	n.mustCLI(0, "topics", "create", "orders", "--description", "order events")
	n.mustCLI(0, "topics", "subscribe", "orders", "--function", "audit")
	n.mustCLI(0, "topics", "subscribe", "orders", "--function", "books", "--filter", "$.type=order.created", "--filter", "detail.kind=book")
	n.mustCLI(0, "topics", "subscribe", "orders", "--function", "refunds", "--filter", "type=order.refunded")

	r := n.mustCLI(0, "topics", "publish", "orders", "-o", "json", "--data", `{"type": "order.created", "detail": {"kind": "book"}, "n": 7}`)
	var pub client.Published
	if err := json.Unmarshal([]byte(r.stdout), &pub); err != nil || pub.MessageID == "" {
		t.Fatalf("publish -o json printed %q (%v)", r.stdout, err)
	}
	if pub.Subscribers != 2 {
		t.Fatalf("the message went to %d subscribers, want 2 (audit, books)", pub.Subscribers)
	}
	// The publish's Raft entry queued every matching subscriber's event,
	// and a queued event has its record: refunds has none now, so it
	// never gets one for this message.
	if recs := n.invocations("refunds"); len(recs) != 0 {
		t.Errorf("refunds, whose filter does not match, has records: %+v", recs)
	}

	for _, fn := range []string{"audit", "books"} {
		id := model.TopicRequestID(pub.MessageID, fn)
		rec := n.waitRecord(id, patience, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
		if rec.Function != fn || rec.Trigger != "topic:orders" || rec.Attempts != 1 {
			t.Errorf("%s's record: function %q trigger %q attempts %d, want %s, topic:orders, 1", fn, rec.Function, rec.Trigger, rec.Attempts, fn)
		}
		var got snsResult
		if err := json.Unmarshal(rec.Result, &got); err != nil {
			t.Fatalf("%s returned %s: %v", fn, rec.Result, err)
		}
		if got.Source != "nimbus:topic" || got.Topic != "nimbus:topic:default:orders" || got.ID != pub.MessageID ||
			got.Message["type"] != "order.created" || got.Message["n"] != float64(7) {
			t.Errorf("%s got %+v, want the message as published with its ID", fn, got)
		}
		if recs := n.invocations(fn); len(recs) != 1 {
			t.Errorf("%s has %d records, want 1", fn, len(recs))
		}
	}
	if recs := n.invocations("refunds"); len(recs) != 0 {
		t.Errorf("refunds ran: %+v", recs)
	}

	top := n.topic("orders")
	if top.Published != 1 || top.LastMessage != pub.MessageID || subscriberNames(top) != "audit,books,refunds" || top.Description != "order events" {
		t.Errorf("topics get: %+v", top)
	}
	if table := n.mustCLI(0, "topics", "get", "orders").stdout; !strings.Contains(table, "detail.kind=book") || !strings.Contains(table, "published:") {
		t.Errorf("topics get does not show the subscribers' filters and the publish count:\n%s", table)
	}
	if table := n.mustCLI(0, "topics", "ls").stdout; !strings.Contains(table, "orders") {
		t.Errorf("topics ls does not list orders:\n%s", table)
	}
}

func TestTopicBadInputIsRefusedClearlyAndChangesNothing(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("sub", snsHandler, nil)
	n.mustCLI(0, "topics", "create", "orders")
	n.mustCLI(0, "topics", "subscribe", "orders", "--function", "sub", "--filter", "type=x")

	publish := func(topic string, body []byte) (int, string) {
		status, _, b := n.do("POST", "/v1/topics/"+topic+"/publish", "application/json", bytes.NewReader(body))
		var e client.ErrorBody
		json.Unmarshal(b, &e)
		return status, e.Error.Message
	}
	subscribe := func(sub string) (int, string) {
		status, _, b := n.do("POST", "/v1/topics/orders/subscriptions", "application/json", strings.NewReader(sub))
		var e client.ErrorBody
		json.Unmarshal(b, &e)
		return status, e.Error.Message
	}
	cases := []struct {
		name   string
		call   func() (int, string)
		status int
		says   string
	}{
		{"a publish to a missing topic", func() (int, string) { return publish("nope", []byte(`{}`)) },
			http.StatusNotFound, `topic "nope" not found in namespace "default"`},
		{"a publish of malformed JSON", func() (int, string) { return publish("orders", []byte(`{"type": `)) },
			http.StatusBadRequest, "the message is not valid JSON"},
		{"a publish of a message over 256 KB", func() (int, string) {
			return publish("orders", []byte(`"`+strings.Repeat("x", 300<<10)+`"`))
		}, http.StatusRequestEntityTooLarge, "256 KB"},
		{"a publish to a topic named with another namespace", func() (int, string) { return publish("team:orders", []byte(`{}`)) },
			http.StatusBadRequest, "names a namespace"},
		{"a subscription of a missing function", func() (int, string) { return subscribe(`{"function": "ghost"}`) },
			http.StatusNotFound, `function "ghost" not found in namespace "default"`},
		{"a subscription with a filter of bad syntax", func() (int, string) {
			return subscribe(`{"function": "sub", "filters": [{"path": "items[0].id", "value": "1"}]}`)
		}, http.StatusBadRequest, `filter path "items[0].id"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg := c.call()
			if status != c.status || !strings.Contains(msg, c.says) {
				t.Errorf("got %d %q, want %d saying %q", status, msg, c.status, c.says)
			}
		})
	}

	// The CLI says the same, and refuses malformed data before sending it.
	if r := n.cli("", "topics", "subscribe", "orders", "--function", "sub", "--filter", "a[0]=1"); r.code == 0 || !strings.Contains(r.stderr, `filter path "a[0]"`) {
		t.Errorf("subscribe with a bad filter: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := n.cli("", "topics", "publish", "orders", "--data", `{"type":`); r.code != 2 || !strings.Contains(r.stderr, "not valid JSON") {
		t.Errorf("publish of malformed data: exit %d, stderr %q", r.code, r.stderr)
	}

	top := n.topic("orders")
	if top.Published != 0 || subscriberNames(top) != "sub" || len(top.Subscribers[0].Filters) != 1 {
		t.Errorf("after refused requests the topic is %+v", top)
	}
	if recs := n.invocations("sub"); len(recs) != 0 {
		t.Errorf("refused publishes ran the subscriber: %+v", recs)
	}

	// A publish sent again under its message ID delivers nothing twice.
	for range 2 {
		r := n.mustCLI(0, "topics", "publish", "orders", "--id", "order-7", "--data", `{"type": "x"}`)
		if !strings.Contains(r.stdout, "order-7") {
			t.Errorf("publish --id order-7 printed %q", r.stdout)
		}
	}
	n.waitRecord(model.TopicRequestID("order-7", "sub"), patience, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
	if recs := n.invocations("sub"); len(recs) != 1 {
		t.Errorf("sub ran %d times for one message published twice under its ID", len(recs))
	}
	if top := n.topic("orders"); top.Published != 1 {
		t.Errorf("published = %d after one message published twice under its ID, want 1", top.Published)
	}

	// Removing a subscribed function is refused unless forced; forced, it
	// removes the subscription too. Removing a topic removes the topic.
	if r := n.cli("", "rm", "sub"); r.code == 0 || !strings.Contains(r.stderr, "topic orders") {
		t.Errorf("rm of a subscribed function: exit %d, stderr %q", r.code, r.stderr)
	}
	n.mustCLI(0, "rm", "sub", "--force")
	if top := n.topic("orders"); len(top.Subscribers) != 0 {
		t.Errorf("after rm --force the topic still has subscribers %s", subscriberNames(top))
	}
	n.mustCLI(0, "topics", "rm", "orders")
	if r := n.cli("", "topics", "get", "orders"); r.code == 0 {
		t.Errorf("topics get after topics rm: exit 0, %s", r.stdout)
	}
}

func TestTopicPublishReachesEverySubscriberWhenTheLeaderDiesRightAfterTheAck(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 2)
	subscribers := []string{"first", "second", "third"}
	for _, fn := range subscribers {
		c.deployQuick(fn)
	}
	c.mustCLI(0, 0, "topics", "create", "orders")
	for _, fn := range subscribers {
		c.mustCLI(0, 0, "topics", "subscribe", "orders", "--function", fn)
	}

	var l int
	waitFor(t, patience, "the cluster has a leader", func() bool { l = c.leader(); return l >= 0 })
	status, b, err := c.api(l, submitHTTP, "POST", "/v1/topics/orders/publish", strings.NewReader(`{"v": 1}`), http.Header{"Content-Type": {"application/json"}})
	var pub client.Published
	if err != nil || status != http.StatusOK || json.Unmarshal(b, &pub) != nil || pub.Subscribers != 3 {
		t.Fatalf("publish on the leader: %d %s %v", status, b, err)
	}
	c.killLeader()

	for _, fn := range subscribers {
		id := model.TopicRequestID(pub.MessageID, fn)
		waitFor(t, patience, fn+" ran the message", func() bool {
			nl := c.leader()
			if nl < 0 {
				return false
			}
			status, b, err := c.api(nl, shortHTTP, "GET", "/v1/invocations/"+id, nil, nil)
			var rec client.Invocation
			return err == nil && status == http.StatusOK && json.Unmarshal(b, &rec) == nil &&
				rec.Status == client.StatusSuccess && rec.Trigger == "topic:orders"
		})
	}
}
