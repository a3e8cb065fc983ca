package sources

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/model"
)

// natsAckWait is how long JetStream waits for an acknowledgement before
// it delivers a message again (after a leader died holding it); a batch
// that runs or waits longer is reported in progress (keepInProgress).
const natsAckWait = 30 * time.Second

// natsConn consumes a JetStream subject through a durable pull consumer
// named after the mapping, so that a new leader's consumer goes on where
// the old one's acknowledgements left it.
type natsConn struct {
	src    model.Source
	nc     *nats.Conn
	js     jetstream.JetStream
	cons   jetstream.Consumer
	stream string
	lost   chan error
}

func dialNATS(ctx context.Context, src model.Source, _ model.SourceProgress) (conn, error) {
	lost := make(chan error, 1)
	opts := []nats.Option{nats.Name("nimbus source " + src.Name), nats.Timeout(10 * time.Second), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) {
			select {
			case lost <- errors.New("the connection closed"):
			default:
			}
		})}
	nc, err := nats.Connect(src.DialURL(), opts...) // a user and password in the URL authenticate
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", src.ShownURL(), err)
	}
	n := &natsConn{src: src, nc: nc, lost: lost}
	if err := n.open(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return n, nil
}

func (n *natsConn) open(ctx context.Context) error {
	var err error
	if n.js, err = jetstream.New(n.nc); err != nil {
		return err
	}
	n.stream = n.src.Stream
	if n.stream == "" {
		if n.stream, err = n.js.StreamNameBySubject(ctx, n.src.Subject); err != nil {
			return fmt.Errorf("no JetStream stream captures subject %q: %w", n.src.Subject, err)
		}
	}
	deliver := jetstream.DeliverNewPolicy
	if n.src.StartFrom == "earliest" {
		deliver = jetstream.DeliverAllPolicy
	}
	durable := "nimbus-" + n.src.Namespace + "-" + n.src.Name
	n.cons, err = n.js.CreateOrUpdateConsumer(ctx, n.stream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: n.src.Subject, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: deliver, AckWait: natsAckWait, MaxAckPending: 2 * n.src.BatchSize * n.src.Concurrency,
		MaxDeliver: -1,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) || err != nil && deliver == jetstream.DeliverNewPolicy {
		// The durable consumer exists from an earlier term (its deliver
		// policy cannot change): go on where it is.
		if cons, gerr := n.js.Consumer(ctx, n.stream, durable); gerr == nil {
			n.cons, err = cons, nil
		}
	}
	if err != nil {
		return fmt.Errorf("consumer on stream %q: %w", n.stream, err)
	}
	return nil
}

// consume pulls with Fetch, one request at a time, each ended within
// half a second: when it returns no pull request of this connection is
// left open on the server, so messages released after it go to the next
// consumer, not to a request nobody reads.
func (n *natsConn) consume(ctx context.Context, deliver func(*message)) error {
	for ctx.Err() == nil {
		batch, err := n.cons.Fetch(n.src.BatchSize, jetstream.FetchMaxWait(500*time.Millisecond))
		if err == nil {
			for msg := range batch.Messages() {
				deliver(n.message(msg))
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case lerr := <-n.lost:
				return fmt.Errorf("%s: %w", n.src.ShownURL(), lerr)
			default:
			}
			return fmt.Errorf("reading subject %q: %w", n.src.Subject, err)
		}
	}
	return nil
}

func (n *natsConn) message(msg jetstream.Msg) *message {
	rec := map[string]any{"eventSource": "nimbus:nats", "subject": msg.Subject(), "stream": n.stream}
	id := ""
	redelivered := false
	if md, err := msg.Metadata(); err == nil {
		id = strconv.FormatUint(md.Sequence.Stream, 10)
		rec["sequence"] = md.Sequence.Stream
		rec["timestamp"] = md.Timestamp.UTC().Format(time.RFC3339Nano)
		rec["deliveries"] = md.NumDelivered
		redelivered = md.NumDelivered > 1
	}
	rec["messageId"] = id
	rec["redelivered"] = redelivered
	if h := msg.Headers(); len(h) > 0 {
		rec["headers"] = h
	}
	if n.src.Format == "raw" {
		rec["data"] = msg.Data()
	}
	return &message{id: id, lane: -1, body: msg.Data(), record: rec, redelivered: redelivered, handle: msg}
}

func (n *natsConn) ack(ctx context.Context, msgs []*message) error {
	for _, m := range msgs {
		if err := m.handle.(jetstream.Msg).Ack(); err != nil {
			return err
		}
	}
	return nil
}

func (n *natsConn) deadLetter(ctx context.Context, target string, m *message, reason string) error {
	out := nats.NewMsg(target)
	out.Data = m.body
	out.Header.Set("Nimbus-Source", n.src.Name)
	out.Header.Set("Nimbus-Reason", reason)
	out.Header.Set("Nimbus-Subject", m.handle.(jetstream.Msg).Subject())
	if _, err := n.js.PublishMsg(ctx, out); err != nil {
		return err
	}
	return nil
}

func (n *natsConn) inProgress(msgs []*message) {
	for _, m := range msgs {
		m.handle.(jetstream.Msg).InProgress()
	}
}

func (n *natsConn) release(msgs []*message) {
	for _, m := range msgs {
		m.handle.(jetstream.Msg).Nak()
	}
}

func (n *natsConn) lag(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := n.cons.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.NumPending)
}

// close flushes what the connection buffered (the naks of release among
// it) before it closes.
func (n *natsConn) close() {
	n.nc.FlushTimeout(2 * time.Second)
	n.nc.Close()
}
