package brokertest

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queues is a test's client of a RabbitMQ broker: a channel in confirm
// mode, opened again after a broker restart, closed when the test ends.
type Queues struct {
	b  *Broker
	ch *amqp.Channel
}

// Queues connects to a RabbitMQ broker and declares durable queues.
func (b *Broker) Queues(names ...string) *Queues {
	b.t.Helper()
	q := &Queues{b: b}
	q.dial()
	for _, name := range names {
		if _, err := q.ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			b.t.Fatalf("declaring queue %s: %v", name, err)
		}
	}
	return q
}

func (q *Queues) dial() {
	c, err := amqp.Dial(q.b.URL)
	if err != nil {
		q.b.t.Fatalf("connecting to %s: %v", q.b.name, err)
	}
	q.b.t.Cleanup(func() { c.Close() })
	if q.ch, err = c.Channel(); err == nil {
		err = q.ch.Confirm(false)
	}
	if err != nil {
		q.b.t.Fatalf("a channel to %s: %v", q.b.name, err)
	}
}

// Publish publishes a persistent message to queue and waits until the
// broker confirms it.
func (q *Queues) Publish(queue string, body []byte) {
	q.b.t.Helper()
	if q.ch.IsClosed() {
		q.dial() // after a broker restart
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf, err := q.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent})
	if err == nil {
		_, err = conf.WaitContext(ctx)
	}
	if err != nil {
		q.b.t.Fatalf("publishing to %s: %v", queue, err)
	}
}

// Drain takes every message waiting in queue.
func (q *Queues) Drain(queue string) [][]byte {
	q.b.t.Helper()
	var out [][]byte
	for {
		d, ok, err := q.ch.Get(queue, true)
		if err != nil {
			q.b.t.Fatalf("reading queue %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d.Body)
	}
}

// Ready is how many messages wait in queue, ready for a consumer.
func (q *Queues) Ready(queue string) int {
	q.b.t.Helper()
	st, err := q.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		q.b.t.Fatalf("queue %s: %v", queue, err)
	}
	return st.Messages
}
