package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
	"nimbus/pkg/client"
)

// noOp is the throughput phase's function.
const noOp = "def handler(event, context):\n    return {}\n"

// printer is the paced phase's function: it prints the "i" of every
// message of its batch on one line, which the invocation record's log
// tail keeps (a batch of 100 prints under 1 KB of the tail's 4 KB).
const printer = `def handler(event, context):
    print("SEEN " + ",".join(str(r["body"]["i"]) for r in event["Records"]))
    return {}
`

// Throughput is the throughput phase of one broker at one concurrency.
type Throughput struct {
	Messages  int     `json:"messages"`
	PreloadMS float64 `json:"preload_ms"` // publishing them, confirmed
	// PerS is messages / (the end of the last batch's invocation - the
	// mapping's creation): the goal's figure.
	PerS float64 `json:"per_s"`
	// ProgressPerS is messages / (the first GET /v1/sources/NAME that
	// reported them all succeeded - the creation). The leader reports
	// progress every 2 s, so this is low by up to that much.
	ProgressPerS float64 `json:"progress_per_s"`
	// SteadyPerS is messages / (last batch end - first batch start):
	// without connecting and the first fetch.
	SteadyPerS   float64 `json:"steady_per_s"`
	FirstBatchMS float64 `json:"first_batch_ms"` // creation -> first batch's start
	Batches      int     `json:"batches"`
	MeanBatch    float64 `json:"mean_batch"`
	ColdStarts   int     `json:"cold_starts"`
	// Invocation is the batches' durations as recorded.
	Invocation stats.Summary `json:"invocation"`
	// CPUPer1000 is CPU seconds per 1,000 messages from the creation to
	// the progress seen complete, by the leader, the two followers, the
	// worker's process group, the broker's process group (RabbitMQ) and
	// this process (the publisher, the poller, Kafka's kfake).
	CPUPer1000   map[string]float64 `json:"cpu_s_per_1000"`
	DeadLettered int64              `json:"dead_lettered"`
}

// Paced is the paced phase of one broker at one concurrency.
type Paced struct {
	RatePerS float64 `json:"rate_per_s"` // as achieved
	Sent     int     `json:"sent"`
	// Latency is, per message found in a batch's log, the batch's
	// invocation end (record start + duration) - its publish time.
	Latency   stats.Summary `json:"latency"`
	Batches   int           `json:"batches"`
	MeanBatch float64       `json:"mean_batch"`
	// Truncated says the record listing hit the API's limit (10,000, the
	// newest): the oldest batches were not read, and found < sent.
	Truncated bool `json:"truncated,omitempty"`
}

// listLimit is the most records GET /v1/invocations gives.
const listLimit = 10000

// bench is what the phases share.
type bench struct {
	api    *cluster.API
	c      *cluster.Cluster
	leader *cluster.Proc
	o      options
}

func (bn *bench) throughput(ctx context.Context, b *broker, conc int) (*Throughput, error) {
	name, d, err := bn.setup(ctx, b, "tp", conc, noOp)
	if err != nil {
		return nil, err
	}
	took, err := preload(ctx, b, d, bn.o.messages)
	if err != nil {
		return nil, fmt.Errorf("pre-loading %s: %w", d, err)
	}
	cpu0 := bn.cpu(b)
	t0 := time.Now()
	if err := bn.createSource(ctx, name, b, d, conc); err != nil {
		return nil, err
	}
	p, err := bn.waitDone(ctx, name, int64(bn.o.messages), max(2*time.Minute, time.Duration(bn.o.messages)*time.Millisecond))
	if err != nil {
		return nil, err
	}
	seen := time.Since(t0)
	cpu1 := bn.cpu(b)
	if err := bn.deleteSource(ctx, name); err != nil {
		return nil, err
	}
	recs, err := bn.records(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no invocation records", name)
	}
	t := &Throughput{Messages: bn.o.messages, PreloadMS: stats.MS(took), Batches: len(recs), DeadLettered: p.DeadLettered,
		MeanBatch: stats.Round(float64(bn.o.messages) / float64(len(recs))), CPUPer1000: map[string]float64{}}
	first, last := recs[0].Start, end(recs[0])
	var durs []time.Duration
	for _, r := range recs {
		if r.Start.Before(first) {
			first = r.Start
		}
		if e := end(r); e.After(last) {
			last = e
		}
		if r.ColdStart {
			t.ColdStarts++
		}
		durs = append(durs, time.Duration(r.DurationMS*float64(time.Millisecond)))
	}
	n := float64(bn.o.messages)
	t.PerS = stats.Round(n / last.Sub(t0).Seconds())
	t.ProgressPerS = stats.Round(n / seen.Seconds())
	t.SteadyPerS = stats.Round(n / last.Sub(first).Seconds())
	t.FirstBatchMS = stats.MS(first.Sub(t0))
	t.Invocation = stats.Summarize(durs)
	for k, v := range cpu1 {
		t.CPUPer1000[k] = stats.Round((v - cpu0[k]) / n * 1000)
	}
	return t, nil
}

func (bn *bench) paced(ctx context.Context, b *broker, conc int) (*Paced, error) {
	name, d, err := bn.setup(ctx, b, "lat", conc, printer)
	if err != nil {
		return nil, err
	}
	if err := bn.createSource(ctx, name, b, d, conc); err != nil {
		return nil, err
	}
	// One message first, unmeasured: the consumer is connected (and an
	// instance warm) once its batch has a record.
	if err := b.send(ctx, d, []byte(`{"i":-1,"t":0}`)); err != nil {
		return nil, err
	}
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		recs, err := bn.records(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: the first message did not run within a minute", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := int(float64(bn.o.rate) * bn.o.paceFor.Seconds())
	pub := make([]time.Time, n)
	start := time.Now()
	for k := range n {
		if w := time.Until(start.Add(time.Duration(k) * time.Second / time.Duration(bn.o.rate))); w > 0 {
			time.Sleep(w)
		}
		pub[k] = time.Now()
		if err := b.send(ctx, d, fmt.Appendf(nil, `{"i":%d,"t":%d}`, k, pub[k].UnixMicro())); err != nil {
			return nil, err
		}
	}
	sent := time.Since(start)
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	if _, err := bn.waitDone(ctx, name, int64(n+1), 2*time.Minute); err != nil {
		return nil, err
	}
	if err := bn.deleteSource(ctx, name); err != nil {
		return nil, err
	}
	recs, err := bn.records(ctx, name)
	if err != nil {
		return nil, err
	}
	// The deploy's warm-up invoke is the function's one record besides
	// the mapping's.
	truncated := len(recs)+1 >= listLimit
	// A message run twice (redelivered) counts at its first end.
	ended := make([]time.Time, n)
	for _, r := range recs {
		e := end(r)
		for _, k := range seenIn(r.LogTail) {
			if k >= 0 && k < n && (ended[k].IsZero() || e.Before(ended[k])) {
				ended[k] = e
			}
		}
	}
	var lat []time.Duration
	for k, e := range ended {
		if !e.IsZero() {
			lat = append(lat, e.Sub(pub[k]))
		}
	}
	return &Paced{RatePerS: stats.Round(float64(n) / sent.Seconds()), Sent: n, Latency: stats.Summarize(lat),
		Batches: len(recs) - 1, MeanBatch: stats.Round(float64(n) / float64(max(len(recs)-1, 1))), Truncated: truncated}, nil
}

// seenIn reads the message numbers the printer function logged.
func seenIn(log string) []int {
	var out []int
	for _, line := range strings.Split(log, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "SEEN ")
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if k, err := strconv.Atoi(f); err == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

// end is when an invocation's handler ended, as its record says.
func end(r client.Invocation) time.Time {
	return r.Start.Add(time.Duration(r.DurationMS * float64(time.Millisecond)))
}

// setup deploys the function of a phase at a concurrency on a broker
// (see deploy) and makes its queue or topic ready; name names both the
// function and the mapping, d the queue or topic.
func (bn *bench) setup(ctx context.Context, b *broker, phase string, conc int, source string) (name, d string, err error) {
	name = fmt.Sprintf("%s-%s-c%d", phase, b.kind, conc)
	if err := bn.deploy(ctx, name, source); err != nil {
		return "", "", err
	}
	d = dest(phase, conc)
	if b.prepare != nil {
		err = b.prepare(ctx, d)
	}
	return name, d, err
}

// deploy deploys a function and invokes it once, so that the phase
// starts with a warm instance, as a mapping that has run a while has.
func (bn *bench) deploy(ctx context.Context, name, source string) error {
	if err := bn.api.Deploy(ctx, bn.leader.API, name, source); err != nil {
		return err
	}
	status, body, err := bn.api.Do(ctx, http.MethodPost, bn.leader.API, "/v1/functions/"+name+"/invoke",
		[]byte(`{"Records":[{"body":{"i":-1}}]}`), nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("warm-up invoke of %s: %d %s", name, status, cluster.Short(body))
	}
	return err
}

func (bn *bench) createSource(ctx context.Context, name string, b *broker, d string, conc int) error {
	src := client.Source{Name: name, Function: name, Type: b.kind, URL: b.url, BatchSize: bn.o.batch,
		Concurrency: conc, StartFrom: "earliest"}
	if b.kind == "kafka" {
		src.Topic = d
	} else {
		src.Queue = d
	}
	body, err := json.Marshal(src)
	if err != nil {
		return err
	}
	status, resp, err := bn.api.Do(ctx, http.MethodPut, bn.leader.API, "/v1/sources/"+name, body, nil)
	if err == nil && status != http.StatusCreated && status != http.StatusOK {
		err = fmt.Errorf("creating source %s: %d %s", name, status, cluster.Short(resp))
	}
	return err
}

func (bn *bench) deleteSource(ctx context.Context, name string) error {
	status, resp, err := bn.api.Do(ctx, http.MethodDelete, bn.leader.API, "/v1/sources/"+name, nil, nil)
	if err == nil && status >= 300 {
		err = fmt.Errorf("deleting source %s: %d %s", name, status, cluster.Short(resp))
	}
	return err
}

// waitDone polls GET /v1/sources/NAME every 20 ms until its progress
// counts n messages succeeded or dead-lettered, or limit passes.
func (bn *bench) waitDone(ctx context.Context, name string, n int64, limit time.Duration) (client.SourceProgress, error) {
	deadline := time.Now().Add(limit)
	for {
		var s client.Source
		if err := bn.api.GetJSON(ctx, bn.leader.API, "/v1/sources/"+name, &s); err != nil {
			return s.Progress, err
		}
		if p := s.Progress; p.Succeeded+p.DeadLettered >= n {
			return p, nil
		}
		if time.Now().After(deadline) {
			return s.Progress, fmt.Errorf("source %s: %d of %d messages done after %s; progress %+v", name,
				s.Progress.Succeeded+s.Progress.DeadLettered, n, limit, s.Progress)
		}
		select {
		case <-ctx.Done():
			return s.Progress, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// records are the invocation records of source name's function run by
// the mapping (trigger source:NAME), read on the leader, which runs the
// consumers and so has every record as soon as its invocation answered.
func (bn *bench) records(ctx context.Context, name string) ([]client.Invocation, error) {
	all, err := bn.api.Invocations(ctx, bn.leader.API, name)
	if err != nil {
		return nil, err
	}
	var out []client.Invocation
	for _, r := range all {
		if r.Trigger == "source:"+name {
			out = append(out, r)
		}
	}
	return out, nil
}

// cpu is the CPU seconds used so far by the leader, the followers, the
// worker's process group, the broker's (if it is a process) and this
// process.
func (bn *bench) cpu(b *broker) map[string]float64 {
	m := map[string]float64{"leader": groupCPU(bn.leader.Pid()), "worker": groupCPU(bn.c.Worker.Pid()), "bench": selfCPU()}
	for _, s := range bn.c.Servers {
		if s != bn.leader {
			m["followers"] += groupCPU(s.Pid())
		}
	}
	if b.pgid != 0 {
		m["broker"] = groupCPU(b.pgid)
	}
	return m
}
