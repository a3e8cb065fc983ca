package sources

import (
	"bytes"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/waitfor"
)

func TestRabbitMQ(t *testing.T) { exercise(t, rabbitBroker(t)) }
func TestNATS(t *testing.T)     { exercise(t, natsBroker(t)) }
func TestKafka(t *testing.T)    { exercise(t, kafkaBroker(t)) }

// exercise runs the guarantees every source keeps against one real
// broker, one phase (and queue, subject or topic) at a time; the broker
// restart comes last.
func exercise(t *testing.T, b testBroker) {
	t.Run("an unreachable broker shows the error and is retried", func(t *testing.T) {
		r := newRig(t, b.unreached)
		p := r.waitProgress("the mapping says it cannot connect", func(p model.SourceProgress) bool {
			return p.State == model.SourceConnecting && p.Error != ""
		})
		if !strings.Contains(p.Error, "127.0.0.1") {
			t.Errorf("the error does not name the broker: %q", p.Error)
		}
	})

	t.Run("1,000 messages are each handled, and acknowledged only after success", func(t *testing.T) {
		src := b.src("p1")
		src.BatchSize, src.Concurrency, src.Retries = 100, 2, 3
		r := newRig(t, src)
		const n = 1000
		for i := range n {
			bd := body{N: i, Flaky: i%50 == 7}
			raw, _ := json.Marshal(bd)
			b.publish(t, "p1", i, raw)
		}
		if !waitfor.Poll(2*time.Minute, func() bool { return r.fn.succeeded(n) == n }) {
			t.Fatalf("%d of %d messages succeeded; progress %+v", r.fn.succeeded(n), n, r.progress())
		}
		r.waitProgress("the progress counts every message acknowledged", func(p model.SourceProgress) bool {
			return p.Succeeded == n && p.Received >= n && p.Retries >= n/50
		})
		// Partial batch failure: each flaky message was retried in a batch
		// of failed messages only.
		r.fn.mu.Lock()
		for i := 7; i < n; i += 50 {
			found := false
			for _, batch := range r.fn.batches {
				if slices.Contains(batch, i) && !slices.ContainsFunc(batch, func(m int) bool { return m%50 != 7 }) {
					found = true
				}
			}
			if !found {
				t.Errorf("message %d was not retried in a batch of failed messages alone", i)
			}
		}
		tries := make(map[int]int, n)
		for k, v := range r.fn.tries {
			tries[k] = v
		}
		r.fn.mu.Unlock()

		// A new term of office: nothing acknowledged comes back. One more
		// message per partition shows the new consumer reads.
		r.endTerm()
		r.startTerm()
		for i := n; i < n+max(b.partitions, 1); i++ {
			b.publish(t, "p1", i, msg(i))
		}
		waitfor.Until(t, time.Minute, "the next term's consumer handles new messages", func() bool {
			r.fn.mu.Lock()
			defer r.fn.mu.Unlock()
			for i := n; i < n+max(b.partitions, 1); i++ {
				if !r.fn.ok[i] {
					return false
				}
			}
			return true
		})
		r.fn.mu.Lock()
		for i := range n {
			if r.fn.tries[i] != tries[i] {
				t.Errorf("message %d, acknowledged in the first term, ran again in the second", i)
			}
		}
		r.fn.mu.Unlock()
		if p := r.progress(); p.Redelivered != 0 {
			t.Errorf("%d messages counted as delivered again, want 0", p.Redelivered)
		}
	})

	poisonAndMalformed := func(t *testing.T, phase, deadLetter string) *rig {
		src := b.src(phase)
		src.BatchSize, src.Retries, src.DeadLetter = 10, 2, deadLetter
		r := newRig(t, src)
		for i := range 20 {
			raw, _ := json.Marshal(body{N: i, Poison: i == 5})
			b.publish(t, phase, i, raw)
		}
		b.publish(t, phase, 20, []byte("not json {"))
		waitfor.Until(t, time.Minute, "every message but the poison one succeeds", func() bool { return r.fn.succeeded(20) == 19 })
		r.waitProgress("the poison and the malformed message are dead-lettered", func(p model.SourceProgress) bool {
			return p.DeadLettered == 2 && p.Malformed == 1 && p.Succeeded == 19
		})
		if got := r.fn.triesOf(5); got != 3 {
			t.Errorf("the poison message ran %d times, want 3 (1 + 2 retries)", got)
		}
		return r
	}
	t.Run("a poison and a malformed message go to the broker's dead-letter target and the stream goes on", func(t *testing.T) {
		poisonAndMalformed(t, "p2", dlqName(b))
		var dead [][]byte
		waitfor.Until(t, 30*time.Second, "two messages reach the dead-letter target", func() bool {
			dead = append(dead, b.dead(t)...)
			return len(dead) >= 2
		})
		if len(dead) != 2 || !slices.ContainsFunc(dead, func(d []byte) bool { return bytes.Equal(d, []byte("not json {")) }) ||
			!slices.ContainsFunc(dead, func(d []byte) bool { return bytes.Contains(d, []byte(`"poison":true`)) }) {
			t.Errorf("dead-letter target holds %q", dead)
		}
	})
	t.Run("a poison and a malformed message become Nimbus dead letters", func(t *testing.T) {
		r := poisonAndMalformed(t, "p3", "")
		dls := r.deadLetters()
		if len(dls) != 2 {
			t.Fatalf("%d dead letters, want 2: %+v", len(dls), dls)
		}
		reasons := dls[0].Reason + " | " + dls[1].Reason
		if !strings.Contains(reasons, "RetriesExhausted") || !strings.Contains(reasons, "MalformedJSON") {
			t.Errorf("dead-letter reasons: %s", reasons)
		}
		for _, dl := range dls {
			if dl.Trigger != "source:src" || !json.Valid(dl.Event) || !bytes.Contains(dl.Event, []byte(`"Records"`)) {
				t.Errorf("dead letter %+v", dl)
			}
		}
	})

	t.Run("a batch whose run did not end is delivered again to the next term's consumer", func(t *testing.T) {
		src := b.src("p4")
		src.BatchSize = 5
		r := newRig(t, src)
		for i := range 10 {
			raw, _ := json.Marshal(body{N: i, Block: i == 2})
			b.publish(t, "p4", i, raw)
		}
		select {
		case <-r.fn.blocked:
		case <-time.After(time.Minute):
			t.Fatal("the blocking message never ran")
		}
		r.endTerm() // the leader loses office mid-batch
		r.startTerm()
		waitfor.Until(t, time.Minute, "every message succeeds in the next term", func() bool { return r.fn.succeeded(10) == 10 })
		if got := r.fn.triesOf(2); got != 2 {
			t.Errorf("the interrupted message ran %d times, want 2", got)
		}
		if b.partitions == 0 {
			r.waitProgress("the messages delivered again are counted", func(p model.SourceProgress) bool { return p.Redelivered >= 1 })
		}
	})

	t.Run("with concurrency 1 a queue's, subject's or partition's messages run in order", func(t *testing.T) {
		src := b.src("p5")
		src.BatchSize, src.Concurrency = 7, 1
		r := newRig(t, src)
		for i := range 200 {
			b.publish(t, "p5", i, msg(i))
		}
		waitfor.Until(t, time.Minute, "every message succeeds", func() bool { return r.fn.succeeded(200) == 200 })
		r.fn.mu.Lock()
		defer r.fn.mu.Unlock()
		for p, ns := range r.fn.order {
			if !slices.IsSorted(ns) {
				t.Errorf("partition %d (-1: the queue or subject) ran out of order: %v", p, ns)
			}
		}
	})

	if b.process != nil {
		t.Run("a broker restart is survived: the mapping reconnects and goes on", func(t *testing.T) {
			r := newRig(t, b.src("p6"))
			for i := range 10 {
				b.publish(t, "p6", i, msg(i))
			}
			waitfor.Until(t, time.Minute, "the first messages succeed", func() bool { return r.fn.succeeded(10) == 10 })
			b.process.Stop()
			r.waitProgress("the mapping shows it lost the broker", func(p model.SourceProgress) bool {
				return p.State == model.SourceConnecting && p.Error != ""
			})
			b.process.Start()
			for i := 10; i < 20; i++ {
				b.publish(t, "p6", i, msg(i))
			}
			waitfor.Until(t, 2*time.Minute, "the messages after the restart succeed", func() bool { return r.fn.succeeded(20) == 20 })
			r.waitProgress("the mapping runs again", func(p model.SourceProgress) bool { return p.State == model.SourceRunning })
		})
	}
}

func dlqName(b testBroker) string {
	if src := b.src("dlq"); src.Subject != "" {
		return src.Subject
	}
	return "dlq"
}

func unusedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
