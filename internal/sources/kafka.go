package sources

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"nimbus/internal/model"
)

// kafkaConn consumes a Kafka topic in a consumer group named after the
// mapping, committing offsets itself (never automatically): a
// partition's offset moves past a message only once its batch ended.
type kafkaConn struct {
	src  model.Source
	cl   *kgo.Client
	seen map[string]int64 // the last offset handled per partition by earlier terms

	mu   sync.Mutex
	high map[int32]int64 // high watermark per partition, from the last fetch
	next map[int32]int64 // the next offset to handle per partition
}

// kafkaHandle is what a Kafka message needs to be committed.
type kafkaHandle struct {
	partition int32
	offset    int64
	rec       *kgo.Record
}

// kafkaBrokers reads the broker list of a kafka:// URL
// (kafka://host:9092,host:9093) and its user and password, if any.
func kafkaBrokers(src model.Source) (brokers []string, user, password string, err error) {
	u, err := url.Parse(src.DialURL())
	if err != nil {
		return nil, "", "", err
	}
	for _, b := range strings.Split(u.Host, ",") {
		if b != "" {
			brokers = append(brokers, b)
		}
	}
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
	}
	return brokers, user, password, nil
}

func dialKafka(ctx context.Context, src model.Source, base model.SourceProgress) (conn, error) {
	brokers, user, password, err := kafkaBrokers(src)
	if err != nil {
		return nil, err
	}
	start := kgo.NewOffset().AtEnd()
	if src.StartFrom == "earliest" {
		start = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup("nimbus-" + src.Namespace + "-" + src.Name),
		kgo.ConsumeTopics(src.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.ClientID("nimbus-source-" + src.Name),
	}
	if user != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", src.ShownURL(), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("connecting to %s: %w", src.ShownURL(), err)
	}
	return &kafkaConn{src: src, cl: cl, seen: base.Offsets, high: map[int32]int64{}, next: map[int32]int64{}}, nil
}

// kafkaPingEvery is how often a consumer checks that it still reaches a
// broker: the client retries a lost broker by itself, silently, so
// without it the mapping would say running while nothing arrives.
const kafkaPingEvery = 5 * time.Second

func (k *kafkaConn) consume(ctx context.Context, deliver func(*message)) error {
	pollCtx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	go func() {
		t := time.NewTicker(kafkaPingEvery)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(pollCtx, kafkaPingEvery)
			err := k.cl.Ping(pctx)
			cancel()
			if err != nil && pollCtx.Err() == nil {
				lost(fmt.Errorf("no broker of %s answers: %w", k.src.ShownURL(), err))
				return
			}
		}
	}()
	for {
		fetches := k.cl.PollFetches(pollCtx)
		if ctx.Err() != nil {
			return nil
		}
		if err := context.Cause(pollCtx); err != nil {
			return err
		}
		if fetches.IsClientClosed() {
			return fmt.Errorf("the kafka client closed")
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			e := errs[0]
			return fmt.Errorf("fetching topic %q partition %d: %w", e.Topic, e.Partition, e.Err)
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			k.mu.Lock()
			k.high[p.Partition] = p.HighWatermark
			if _, ok := k.next[p.Partition]; !ok && len(p.Records) > 0 {
				k.next[p.Partition] = p.Records[0].Offset
			}
			k.mu.Unlock()
		})
		fetches.EachRecord(func(r *kgo.Record) { deliver(k.message(r)) })
	}
}

func (k *kafkaConn) message(r *kgo.Record) *message {
	id := r.Topic + "-" + strconv.Itoa(int(r.Partition)) + "-" + strconv.FormatInt(r.Offset, 10)
	rec := map[string]any{"eventSource": "nimbus:kafka", "messageId": id, "topic": r.Topic, "partition": r.Partition,
		"offset": r.Offset, "timestamp": r.Timestamp.UnixMilli(), "timestampType": "CREATE_TIME"}
	if r.Key != nil {
		rec["key"] = r.Key
	}
	if len(r.Headers) > 0 {
		h := make(map[string]string, len(r.Headers))
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		rec["headers"] = h
	}
	if k.src.Format == "raw" {
		rec["value"] = r.Value
	}
	last, seen := k.seen[strconv.Itoa(int(r.Partition))]
	return &message{id: id, lane: int(r.Partition), body: r.Value, record: rec, redelivered: seen && r.Offset <= last,
		handle: kafkaHandle{partition: r.Partition, offset: r.Offset, rec: r}}
}

func (k *kafkaConn) ack(ctx context.Context, msgs []*message) error {
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = m.handle.(kafkaHandle).rec
	}
	if err := k.cl.CommitRecords(ctx, recs...); err != nil {
		return err
	}
	k.mu.Lock()
	for _, r := range recs {
		if r.Offset+1 > k.next[r.Partition] {
			k.next[r.Partition] = r.Offset + 1
		}
	}
	k.mu.Unlock()
	return nil
}

func (k *kafkaConn) deadLetter(ctx context.Context, target string, m *message, reason string) error {
	r := m.handle.(kafkaHandle).rec
	out := &kgo.Record{Topic: target, Key: r.Key, Value: r.Value, Headers: append(append([]kgo.RecordHeader(nil), r.Headers...),
		kgo.RecordHeader{Key: "nimbus-source", Value: []byte(k.src.Name)},
		kgo.RecordHeader{Key: "nimbus-reason", Value: []byte(reason)},
		kgo.RecordHeader{Key: "nimbus-origin", Value: []byte(m.id)})}
	return k.cl.ProduceSync(ctx, out).FirstErr()
}

func (k *kafkaConn) inProgress([]*message) {} // uncommitted offsets wait as long as the group member lives

func (k *kafkaConn) release([]*message) {} // closing the connection hands them back

// lag sums, over the partitions fetched, the high watermark less the
// next offset to handle.
func (k *kafkaConn) lag(context.Context) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.high) == 0 {
		return -1
	}
	var lag int64
	for p, hw := range k.high {
		if next, ok := k.next[p]; ok && hw > next {
			lag += hw - next
		}
	}
	return lag
}

func (k *kafkaConn) close() { k.cl.Close() }
