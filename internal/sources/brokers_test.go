package sources

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"nimbus/internal/model"
	"nimbus/internal/sources/brokertest"
)

// testBroker is a real broker as the tests drive it: where a mapping
// reads (one queue, subject or topic per phase, named p1...), how to
// publish to it, and what reached its dead-letter target "dlq".
type testBroker struct {
	src        func(phase string) model.Source
	partitions int // Kafka: messages go to partition n % partitions
	publish    func(t *testing.T, phase string, n int, body []byte)
	dead       func(t *testing.T) [][]byte // drains the dead-letter target
	process    *brokertest.Broker          // nil: cannot restart (Kafka)
	unreached  model.Source
}

var phases = []string{"p1", "p2", "p3", "p4", "p5", "p6"}

func rabbitBroker(t *testing.T) testBroker {
	b := brokertest.RabbitMQ(t)
	q := b.Queues(append(phases, "dlq")...)
	return testBroker{
		src: func(phase string) model.Source {
			return model.Source{Type: model.SourceRabbitMQ, URL: b.URL, Queue: phase}
		},
		publish:   func(t *testing.T, phase string, n int, body []byte) { q.Publish(phase, body) },
		dead:      func(t *testing.T) [][]byte { return q.Drain("dlq") },
		process:   b,
		unreached: model.Source{Type: model.SourceRabbitMQ, URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", unusedPort(t)), Queue: "p1"},
	}
}

func natsBroker(t *testing.T) testBroker {
	b := brokertest.NATS(t)
	var js jetstream.JetStream
	connect := func() {
		nc, err := nats.Connect(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
	}
	connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	var dlq jetstream.Consumer
	return testBroker{
		src: func(phase string) model.Source {
			return model.Source{Type: model.SourceNATS, URL: b.URL, Subject: "t." + phase, StartFrom: "earliest"}
		},
		publish: func(t *testing.T, phase string, n int, body []byte) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := js.Publish(ctx, "t."+phase, body); err != nil {
				connect() // after a broker restart
				if _, err := js.Publish(ctx, "t."+phase, body); err != nil {
					t.Fatalf("publishing to t.%s: %v", phase, err)
				}
			}
		},
		dead: func(t *testing.T) [][]byte {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if dlq == nil {
				var err error
				if dlq, err = js.OrderedConsumer(ctx, "T", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"t.dlq"}}); err != nil {
					t.Fatal(err)
				}
			}
			var out [][]byte
			batch, err := dlq.Fetch(100, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				out = append(out, m.Data())
			}
			return out
		},
		process:   b,
		unreached: model.Source{Type: model.SourceNATS, URL: fmt.Sprintf("nats://127.0.0.1:%d", unusedPort(t)), Subject: "t.p1"},
	}
}

func kafkaBroker(t *testing.T) testBroker {
	const partitions = 4
	addr := brokertest.Kafka(t, partitions, append(phases, "dlq")...)
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	dlq, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dlq.Close)
	return testBroker{
		src: func(phase string) model.Source {
			return model.Source{Type: model.SourceKafka, URL: "kafka://" + addr, Topic: phase, StartFrom: "earliest"}
		},
		partitions: partitions,
		publish: func(t *testing.T, phase string, n int, body []byte) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: phase, Partition: int32(n % partitions), Value: body}).FirstErr(); err != nil {
				t.Fatalf("producing to %s: %v", phase, err)
			}
		},
		dead: func(t *testing.T) [][]byte {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var out [][]byte
			dlq.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
			return out
		},
		unreached: model.Source{Type: model.SourceKafka, URL: fmt.Sprintf("kafka://127.0.0.1:%d", unusedPort(t)), Topic: "p1"},
	}
}
