package brokertest

import (
	"net"
	"strings"
	"testing"
)

func TestANATSServerStopsAndStartsAgainOnItsPort(t *testing.T) {
	b := NATS(t)
	addr := strings.TrimPrefix(b.URL, "nats://")
	b.Stop()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	b.Stop() // stopping a stopped broker does nothing
	b.Start()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("%s refuses connections after Start: %v", addr, err)
	}
	c.Close()
}

func TestRabbitMQQueuesTakeMessagesAndGiveThemBack(t *testing.T) {
	q := RabbitMQ(t).Queues("a")
	q.Publish("a", []byte(`{"n":1}`))
	q.Publish("a", []byte(`{"n":2}`))
	if n := q.Ready("a"); n != 2 {
		t.Fatalf("%d messages ready, want 2", n)
	}
	got := q.Drain("a")
	if len(got) != 2 || string(got[0]) != `{"n":1}` || string(got[1]) != `{"n":2}` {
		t.Errorf("drained %q", got)
	}
	if n := q.Ready("a"); n != 0 {
		t.Errorf("%d messages ready after the drain", n)
	}
}

func TestKafkaAcceptsConnections(t *testing.T) {
	addr := Kafka(t, 1, "t")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the in-process cluster at %s refuses connections: %v", addr, err)
	}
	c.Close()
}
