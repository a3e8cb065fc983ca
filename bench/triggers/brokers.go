package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"nimbus/internal/sources/brokertest"
)

// broker is one of the brokers measured, as the phases use it: where a
// mapping reaches it, and a producer of the benchmark's messages.
type broker struct {
	kind string // rabbitmq or kafka, a mapping's type
	url  string // a mapping's URL
	// pgid is the broker's process group, for its CPU time; 0 when it
	// runs in this process (Kafka).
	pgid int
	// prepare makes dest (a queue) ready to receive; nil when nothing is
	// needed (Kafka's topics exist from the start).
	prepare func(ctx context.Context, dest string) error
	// send publishes one message to dest without waiting for the broker;
	// flush waits until the broker has confirmed everything sent.
	send  func(ctx context.Context, dest string, body []byte) error
	flush func(ctx context.Context) error
	close func()
}

// startRabbitMQ starts RabbitMQ with brokertest (stopped by r.Close) and
// connects a publisher on a channel in confirm mode.
func startRabbitMQ(r *runner) (*broker, error) {
	var b *brokertest.Broker
	if err := r.do(func() { b = brokertest.RabbitMQ(r) }); err != nil {
		return nil, err
	}
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	var (
		mu      sync.Mutex
		pending []*amqp.DeferredConfirmation
	)
	return &broker{
		kind: "rabbitmq", url: b.URL, pgid: b.Pid(),
		prepare: func(ctx context.Context, dest string) error {
			// Not durable, transient messages: the benchmark measures the
			// consumer, not the broker's disk.
			_, err := ch.QueueDeclare(dest, false, false, false, false, nil)
			return err
		},
		send: func(ctx context.Context, dest string, body []byte) error {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", dest, false, false,
				amqp.Publishing{ContentType: "application/json", Body: body})
			if err == nil {
				mu.Lock()
				pending = append(pending, dc)
				mu.Unlock()
			}
			return err
		},
		flush: func(ctx context.Context) error {
			mu.Lock()
			wait := pending
			pending = nil
			mu.Unlock()
			for _, dc := range wait {
				ok, err := dc.WaitContext(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("rabbitmq refused a message (nack)")
				}
			}
			return nil
		},
		close: func() { conn.Close() },
	}, nil
}

// startKafka starts franz-go's in-process Kafka (kfake, stopped by
// r.Close) with topics of partitions partitions each, and a producer
// that spreads records over the partitions in turn and sends each at
// once (no linger).
func startKafka(r *runner, partitions int, topics []string) (*broker, error) {
	var addr string
	if err := r.do(func() { addr = brokertest.Kafka(r, partitions, topics...) }); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return nil, err
	}
	var (
		mu      sync.Mutex
		lastErr error
	)
	return &broker{
		kind: "kafka", url: "kafka://" + addr,
		send: func(ctx context.Context, dest string, body []byte) error {
			cl.Produce(ctx, &kgo.Record{Topic: dest, Value: body}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					lastErr = err
					mu.Unlock()
				}
			})
			return nil
		},
		flush: func(ctx context.Context) error {
			if err := cl.Flush(ctx); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			err := lastErr
			lastErr = nil
			return err
		},
		close: cl.Close,
	}, nil
}

// preload publishes n messages {"i":k} (k from 0) to dest and waits
// until the broker has them all; it returns how long that took.
func preload(ctx context.Context, b *broker, dest string, n int) (time.Duration, error) {
	start := time.Now()
	for k := range n {
		if err := b.send(ctx, dest, fmt.Appendf(nil, `{"i":%d}`, k)); err != nil {
			return 0, err
		}
		if k%5000 == 4999 {
			// Bounds what waits unconfirmed in memory.
			if err := b.flush(ctx); err != nil {
				return 0, err
			}
		}
	}
	err := b.flush(ctx)
	return time.Since(start), err
}
