package sources

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"nimbus/internal/model"
)

// rabbitConn consumes a RabbitMQ queue on one channel with a prefetch of
// two lanes' worth of batches; dead letters are published on a second
// channel in confirm mode, and the lag is read on a third (a passive
// declare of a missing queue closes the channel it runs on).
type rabbitConn struct {
	src     model.Source
	conn    *amqp.Connection
	ch      *amqp.Channel
	pubMu   sync.Mutex
	pub     *amqp.Channel
	lagMu   sync.Mutex
	lagCh   *amqp.Channel
	closing chan *amqp.Error
}

func dialRabbitMQ(ctx context.Context, src model.Source, _ model.SourceProgress) (conn, error) {
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": "nimbus source " + src.Name}}
	c, err := amqp.DialConfig(src.DialURL(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", src.ShownURL(), err)
	}
	r := &rabbitConn{src: src, conn: c, closing: c.NotifyClose(make(chan *amqp.Error, 1))}
	if err := r.open(); err != nil {
		c.Close()
		return nil, err
	}
	return r, nil
}

func (r *rabbitConn) open() error {
	var err error
	if r.ch, err = r.conn.Channel(); err != nil {
		return err
	}
	if _, err = r.ch.QueueDeclarePassive(r.src.Queue, false, false, false, false, nil); err != nil {
		return fmt.Errorf("queue %q: %w", r.src.Queue, err)
	}
	if r.ch, err = r.conn.Channel(); err != nil { // the passive declare may have closed the first
		return err
	}
	prefetch := min(2*r.src.BatchSize*r.src.Concurrency, 65535)
	if err = r.ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	if r.pub, err = r.conn.Channel(); err != nil {
		return err
	}
	return r.pub.Confirm(false)
}

func (r *rabbitConn) consume(ctx context.Context, deliver func(*message)) error {
	tag := "nimbus-" + r.src.Namespace + "-" + r.src.Name
	deliveries, err := r.ch.ConsumeWithContext(ctx, r.src.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming queue %q: %w", r.src.Queue, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-r.closing:
			if e == nil {
				return fmt.Errorf("the connection to %s closed", r.src.ShownURL())
			}
			return fmt.Errorf("the connection to %s closed: %w", r.src.ShownURL(), e)
		case d, ok := <-deliveries:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("the broker ended the consumer of queue %q", r.src.Queue)
			}
			deliver(r.message(d))
		}
	}
}

func (r *rabbitConn) message(d amqp.Delivery) *message {
	props := map[string]any{"contentType": d.ContentType, "deliveryMode": d.DeliveryMode}
	for k, v := range map[string]string{"contentEncoding": d.ContentEncoding, "correlationId": d.CorrelationId, "replyTo": d.ReplyTo,
		"expiration": d.Expiration, "messageId": d.MessageId, "type": d.Type, "userId": d.UserId, "appId": d.AppId} {
		if v != "" {
			props[k] = v
		}
	}
	if len(d.Headers) > 0 {
		props["headers"] = d.Headers
	}
	if d.Priority != 0 {
		props["priority"] = d.Priority
	}
	if !d.Timestamp.IsZero() {
		props["timestamp"] = d.Timestamp.UTC().Format(time.RFC3339)
	}
	id := strconv.FormatUint(d.DeliveryTag, 10)
	rec := map[string]any{"eventSource": "nimbus:rabbitmq", "messageId": id, "queue": r.src.Queue,
		"basicProperties": props, "redelivered": d.Redelivered}
	if r.src.Format == "raw" {
		rec["data"] = d.Body
	}
	return &message{id: id, lane: -1, body: d.Body, record: rec, redelivered: d.Redelivered, handle: d.DeliveryTag}
}

func (r *rabbitConn) ack(_ context.Context, msgs []*message) error {
	for _, m := range msgs {
		if err := r.ch.Ack(m.handle.(uint64), false); err != nil {
			return err
		}
	}
	return nil
}

func (r *rabbitConn) deadLetter(ctx context.Context, target string, m *message, reason string) error {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	conf, err := r.pub.PublishWithDeferredConfirmWithContext(ctx, "", target, true, false, amqp.Publishing{
		Headers: amqp.Table{"x-nimbus-source": r.src.Name, "x-nimbus-reason": reason, "x-nimbus-queue": r.src.Queue},
		Body:    m.body, DeliveryMode: amqp.Persistent, Timestamp: time.Now(),
	})
	if err != nil {
		return err
	}
	ok, err := conf.WaitContext(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("the broker refused the message (nack)")
	}
	return err
}

func (r *rabbitConn) inProgress([]*message) {} // RabbitMQ holds unacknowledged messages as long as the channel lives

func (r *rabbitConn) release([]*message) {} // closing the connection hands them back

func (r *rabbitConn) lag(context.Context) int64 {
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	if r.lagCh == nil || r.lagCh.IsClosed() {
		ch, err := r.conn.Channel()
		if err != nil {
			return -1
		}
		r.lagCh = ch
	}
	q, err := r.lagCh.QueueDeclarePassive(r.src.Queue, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return int64(q.Messages)
}

func (r *rabbitConn) close() { r.conn.Close() }
