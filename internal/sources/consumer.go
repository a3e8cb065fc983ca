package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/model"
	"nimbus/internal/worker"
)

// Invoker runs a function synchronously with an event and records the
// invocation (its record, with trigger, and its log) as any other,
// counted in the metrics under label. *gateway.Gateway is the Invoker of
// a server.
type Invoker interface {
	InvokeFor(ctx context.Context, fn model.Function, trigger, label string, event []byte) (worker.Result, error)
}

// message is one message read from a broker, with the record the
// function sees.
type message struct {
	id          string         // the record's messageId: the batch item identifier
	lane        int            // Kafka's partition; -1 for any lane
	body        []byte         // as received
	record      map[string]any // the record without its body
	redelivered bool
	handle      any // the broker's: what Ack and DeadLetter need
}

// conn is one connection to a mapping's broker.
type conn interface {
	// consume reads messages and gives each to deliver, which blocks while
	// the lanes are full, until ctx ends (nil) or the connection fails.
	consume(ctx context.Context, deliver func(*message)) error
	// ack acknowledges messages whose batch ended.
	ack(ctx context.Context, msgs []*message) error
	// deadLetter publishes msg to the broker's dead-letter target and
	// waits for the broker to confirm it.
	deadLetter(ctx context.Context, target string, msg *message, reason string) error
	// inProgress tells the broker the messages are still being worked on
	// (so that it does not deliver them again while their batch runs or
	// waits to retry), where it can be told.
	inProgress(msgs []*message)
	// release hands messages that will not be handled on this connection
	// back to the broker at once, where it can be told (closing the
	// connection does it for the others).
	release(msgs []*message)
	// lag is how many messages wait on the broker, -1 when unknown.
	lag(ctx context.Context) int64
	close()
}

// counters are a consumer's progress since it started.
type counters struct {
	received, redelivered, succeeded, deadLettered tally
	malformed, batches, failures, retries          atomic.Int64
}

// tally counts messages in the progress and in the metrics' series of
// the mapping (resolved once: a message is counted on the hot path).
type tally struct {
	atomic.Int64
	series prometheus.Counter
}

func (t *tally) add(n int) {
	t.Int64.Add(int64(n))
	t.series.Add(float64(n))
}

// newCounters resolves the mapping's series of m.
func newCounters(m *metrics, src model.Source) *counters {
	c := &counters{}
	for outcome, t := range map[string]*tally{"received": &c.received, "redelivered": &c.redelivered,
		"succeeded": &c.succeeded, "dead_lettered": &c.deadLettered} {
		t.series = m.messages.WithLabelValues(src.Namespace, src.Name, outcome)
	}
	return c
}

// consumer runs one mapping: it connects, consumes into Concurrency
// lanes, and runs each lane's batches in order.
type consumer struct {
	src     model.Source
	inv     Invoker
	deadEnd func(ctx context.Context, dl []model.DeadLetter) error // stores Nimbus dead letters
	dial    func(ctx context.Context, src model.Source, base model.SourceProgress) (conn, error)
	lookup  func(qualifiedName string) (model.Function, error)
	log     *slog.Logger
	metrics *metrics

	n        *counters
	mu       sync.Mutex
	state    string
	lastErr  string
	lagValue int64
	offsets  map[string]int64 // Kafka: last offset handled per partition
}

func (c *consumer) setState(state, errText string) {
	c.mu.Lock()
	c.state, c.lastErr = state, errText
	c.mu.Unlock()
}

// run connects and consumes until ctx ends, reconnecting with backoff
// (1 s doubling to 30 s) after a failure.
func (c *consumer) run(ctx context.Context, base model.SourceProgress) {
	backoff := time.Second
	for ctx.Err() == nil {
		c.setState(model.SourceStarting, c.currentErr())
		cn, err := c.dial(ctx, c.src, base)
		if err == nil {
			c.setState(model.SourceRunning, "")
			backoff = time.Second
			err = c.consumeWith(ctx, cn)
			cn.close()
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("event source connection failed: retrying", "source", c.src.Name, "namespace", c.src.Namespace,
			"url", c.src.ShownURL(), "err", err, "retry_in", backoff)
		c.setState(model.SourceConnecting, err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (c *consumer) currentErr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// consumeWith runs the lanes over one connection until ctx ends or the
// connection fails; it returns once every lane has stopped.
func (c *consumer) consumeWith(ctx context.Context, cn conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var laneErr error
	var left []*message // what the lanes hold unfinished when they stop
	lanes := make([]chan *message, c.src.Concurrency)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan *message, c.src.BatchSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			unfinished, err := c.lane(ctx, cn, lanes[i])
			mu.Lock()
			defer mu.Unlock()
			left = append(left, unfinished...)
			if err != nil && laneErr == nil {
				// A batch not acknowledged: the connection goes, and the
				// broker delivers what it held again.
				laneErr = err
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watchLag(ctx, cn)
	}()
	next := 0
	err := cn.consume(ctx, func(m *message) {
		c.n.received.add(1)
		if m.redelivered {
			c.n.redelivered.add(1)
		}
		i := m.lane
		if i < 0 {
			i, next = next, (next+1)%len(lanes)
		}
		select {
		case lanes[i%len(lanes)] <- m:
		case <-ctx.Done():
			mu.Lock()
			left = append(left, m)
			mu.Unlock()
		}
	})
	cancel()
	wg.Wait()
	// Released only now that consume has returned (and stopped asking the
	// broker for more), so that the broker does not hand them straight
	// back to this consumer.
	for _, lane := range lanes {
		for len(lane) > 0 {
			left = append(left, <-lane)
		}
	}
	cn.release(left)
	if laneErr != nil {
		return laneErr
	}
	return err
}

// watchLag asks the broker for the lag every two seconds.
func (c *consumer) watchLag(ctx context.Context, cn conn) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		lag := cn.lag(ctx)
		c.mu.Lock()
		c.lagValue = lag
		c.mu.Unlock()
		c.metrics.lag.WithLabelValues(c.src.Namespace, c.src.Name).Set(float64(lag))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lane gathers batches from in and runs them one after another, until
// ctx ends or a batch could not be acknowledged (the error); it returns
// the messages of the batch it did not finish.
func (c *consumer) lane(ctx context.Context, cn conn, in <-chan *message) (unfinished []*message, err error) {
	for {
		var first *message
		select {
		case <-ctx.Done():
			return nil, nil
		case first = <-in:
		}
		batch := []*message{first}
		var window <-chan time.Time
		var timer *time.Timer
		if w := time.Duration(c.src.BatchWindow); w > 0 {
			timer = time.NewTimer(w)
			window = timer.C
		}
	gather:
		for len(batch) < c.src.BatchSize {
			if window == nil {
				select {
				case m := <-in:
					batch = append(batch, m)
					continue
				default:
					break gather
				}
			}
			select {
			case m := <-in:
				batch = append(batch, m)
			case <-window:
				break gather
			case <-ctx.Done():
				timer.Stop()
				return batch, nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if err := c.handle(ctx, cn, batch); err != nil {
			if ctx.Err() != nil {
				err = nil
			}
			return batch, err
		}
	}
}

// handle runs one batch to its end: it invokes the function with the
// messages, retries the failed ones, dead-letters what is left, and then
// acknowledges the whole batch. An error means the batch was not
// acknowledged (ctx ended, or the broker failed).
func (c *consumer) handle(ctx context.Context, cn conn, batch []*message) error {
	stop := keepInProgress(cn, batch)
	defer stop()
	var pending, dead []*message
	reasons := map[*message]string{}
	for _, m := range batch {
		if c.src.Format == "json" && !json.Valid(m.body) {
			dead = append(dead, m)
			reasons[m] = "MalformedJSON: the message body is not valid JSON"
			c.n.malformed.Add(1)
			continue
		}
		pending = append(pending, m)
	}
	delay := time.Duration(c.src.RetryDelay)
	refusedDelay := refusedFirst
	succeeded := 0
	for try := 0; len(pending) > 0; {
		failed, errType, err := c.invoke(ctx, pending)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// The platform could not run it (a concurrency limit, a busy
			// or missing worker): no retry used up, and a short wait,
			// since a slot frees within a run's time.
			if refusedDelay == refusedMax { // refused for seconds now: say so
				c.log.Info("event source batch not run: trying again", "source", c.src.Name, "namespace", c.src.Namespace, "err", err, "in", refusedDelay)
			}
			if !sleep(ctx, refusedDelay) {
				return ctx.Err()
			}
			refusedDelay = min(2*refusedDelay, refusedMax)
			continue
		}
		refusedDelay = refusedFirst
		succeeded += len(pending) - len(failed)
		if len(failed) == 0 {
			break
		}
		c.n.failures.Add(1)
		if try == c.src.Retries {
			for _, m := range failed {
				dead = append(dead, m)
				reasons[m] = "RetriesExhausted: " + errType
			}
			break
		}
		try++
		c.n.retries.Add(int64(len(failed)))
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay *= 2
		pending = failed
	}
	if err := c.bury(ctx, cn, dead, reasons); err != nil {
		return err
	}
	if err := cn.ack(ctx, batch); err != nil {
		return fmt.Errorf("acknowledging %d messages: %w", len(batch), err)
	}
	// Counted once acknowledged: a reported success is one the broker
	// will not deliver again.
	c.n.succeeded.add(succeeded)
	c.n.deadLettered.add(len(dead))
	c.noteHandled(batch)
	return nil
}

// keepInProgress tells the broker every inProgressEvery that batch is
// still being worked on, until the returned stop is called.
func keepInProgress(cn conn, batch []*message) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(inProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				cn.inProgress(batch)
			}
		}
	}()
	return func() { close(done) }
}

// inProgressEvery is how often a batch still running or waiting to retry
// is reported in progress (a third of JetStream's acknowledgement wait).
const inProgressEvery = natsAckWait / 3

// invoke runs the function once with msgs and returns the ones that
// failed (all of them for a function error, those the handler named in
// batchItemFailures otherwise) with the error type; err is a platform
// error: the function did not run.
func (c *consumer) invoke(ctx context.Context, msgs []*message) (failed []*message, errType string, err error) {
	c.n.batches.Add(1)
	event, err := batchEvent(msgs)
	if err != nil {
		return msgs, "EventTooLarge", nil
	}
	fn, err := c.function()
	if err != nil {
		return nil, "", err
	}
	res, err := c.inv.InvokeFor(ctx, fn, "source:"+c.src.Name, "source", event)
	if err != nil {
		return nil, "", err
	}
	if res.ErrorType != "" {
		return msgs, res.ErrorType, nil
	}
	ids, ok := itemFailures(res.Payload)
	if !ok {
		return msgs, "InvalidBatchItemFailures", nil
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	byID := make(map[string]*message, len(msgs))
	for _, m := range msgs {
		byID[m.id] = m
	}
	for id := range ids {
		m, ok := byID[id]
		if !ok {
			return msgs, "InvalidBatchItemFailures", nil
		}
		failed = append(failed, m)
	}
	return failed, "BatchItemFailure", nil
}

// function is the mapping's function as stored now (a new revision is
// picked up by the next batch).
func (c *consumer) function() (model.Function, error) {
	return c.lookup(model.QualifiedName(c.src.Namespace, c.src.Function))
}

// bury sends messages given up on to the dead-letter destination: the
// broker's target when the mapping names one, Nimbus's dead letters
// otherwise (one per message, its event a batch of that message alone,
// so that a redrive runs it again).
func (c *consumer) bury(ctx context.Context, cn conn, dead []*message, reasons map[*message]string) error {
	if len(dead) == 0 {
		return nil
	}
	if c.src.DeadLetter != "" {
		for _, m := range dead {
			if err := cn.deadLetter(ctx, c.src.DeadLetter, m, reasons[m]); err != nil {
				return fmt.Errorf("dead-lettering to %s: %w", c.src.DeadLetter, err)
			}
		}
	} else {
		letters := make([]model.DeadLetter, 0, len(dead))
		now := time.Now().UTC()
		for _, m := range dead {
			event, err := batchEvent([]*message{m})
			if err != nil || c.src.Format == "json" && !json.Valid(m.body) {
				event, _ = json.Marshal(map[string]any{"Records": []any{rawRecord(m)}})
			}
			letters = append(letters, model.DeadLetter{
				RequestID: c.deadLetterID(m), Namespace: c.src.Namespace, Function: c.src.Function,
				Event: event, Reason: reasons[m], Attempts: c.src.Retries + 1, LastError: reasons[m], At: now,
				Trigger: "source:" + c.src.Name,
			})
		}
		if err := c.deadEnd(ctx, letters); err != nil {
			return fmt.Errorf("storing %d dead letters: %w", len(letters), err)
		}
	}
	return nil
}

// deadLetterID names a message's dead letter: the same message given up
// on twice (delivered again after a lost acknowledgement) is stored once.
func (c *consumer) deadLetterID(m *message) string {
	return fmt.Sprintf("source:%s/%s:%s", c.src.Namespace, c.src.Name, m.id)
}

// noteHandled remembers the last Kafka offset handled per partition.
func (c *consumer) noteHandled(batch []*message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		if k, ok := m.handle.(kafkaHandle); ok {
			key := fmt.Sprint(k.partition)
			if c.offsets == nil {
				c.offsets = map[string]int64{}
			}
			if off, seen := c.offsets[key]; !seen || k.offset > off {
				c.offsets[key] = k.offset
			}
		}
	}
}

// batchEvent is the function's event for msgs: {"Records": [...]}, each
// record with the message's body (JSON) or data (base64).
func batchEvent(msgs []*message) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		rec, err := json.Marshal(m.record)
		if err != nil {
			return nil, err
		}
		if json.Valid(m.body) && m.record["data"] == nil && m.record["value"] == nil {
			// The body goes in as it is: {"...", "body": <the JSON>}.
			b.Write(rec[:len(rec)-1])
			b.WriteString(`,"body":`)
			b.Write(bytes.TrimSpace(m.body))
			b.WriteByte('}')
		} else {
			b.Write(rec)
		}
	}
	b.WriteString(`]}`)
	if b.Len() > maxEvent {
		return nil, fmt.Errorf("the batch's event is %d bytes, over %d", b.Len(), maxEvent)
	}
	return b.Bytes(), nil
}

// The wait before a batch the platform refused is offered again: from
// refusedFirst, doubling to refusedMax while refusals go on.
const (
	refusedFirst = 10 * time.Millisecond
	refusedMax   = 2 * time.Second
)

// maxEvent is the largest event a batch may make (a sync invocation's).
const maxEvent = 6 << 20

// rawRecord is m's record with its body as base64, for a body that is
// not JSON.
func rawRecord(m *message) map[string]any {
	rec := make(map[string]any, len(m.record)+1)
	for k, v := range m.record {
		rec[k] = v
	}
	rec["data"] = m.body
	return rec
}

// itemFailures reads a handler's answer: the item identifiers of
// batchItemFailures, if it has that key (ok false when it is malformed).
func itemFailures(payload []byte) (ids map[string]bool, ok bool) {
	var answer struct {
		Failures *[]struct {
			ItemIdentifier *json.RawMessage `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if json.Unmarshal(payload, &answer) != nil || answer.Failures == nil {
		return nil, true // any other answer: every message succeeded
	}
	ids = map[string]bool{}
	for _, f := range *answer.Failures {
		if f.ItemIdentifier == nil {
			return nil, false
		}
		var s string
		if json.Unmarshal(*f.ItemIdentifier, &s) != nil {
			s = string(*f.ItemIdentifier) // a number: its digits
		}
		if s == "" {
			return nil, false
		}
		ids[s] = true
	}
	return ids, true
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
