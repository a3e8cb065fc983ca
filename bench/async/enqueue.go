package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
	"nimbus/pkg/client"
)

// Enqueue is parts 1 and 2: acknowledged async events and their
// completions.
type Enqueue struct {
	Function string `json:"function"`
	Events   int    `json:"events"`
	Clients  int    `json:"clients"`
	// Acked counts the 202 answers; Refused the other answers and
	// transport errors, with the last one in LastRefusal.
	Acked       int    `json:"acked"`
	Refused     int    `json:"refused"`
	LastRefusal string `json:"last_refusal,omitempty"`
	// AckSeconds runs from the first submission to the last 202.
	AckSeconds   float64        `json:"ack_seconds"`
	AckedPerSec  float64        `json:"acked_per_s"`
	AckLatency   stats.Summary  `json:"ack_latency"`
	AckP50MS     float64        `json:"ack_p50_ms"`
	AckP99MS     float64        `json:"ack_p99_ms"`
	PerServerAck map[string]int `json:"acked_per_server"`

	// Completion: every acknowledged request ID's record terminal.
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`     // failed or dead_letter
	Unfinished int `json:"unfinished"` // not terminal when the wait ended
	Missing    int `json:"missing"`    // acknowledged, but no record at all
	Attempts2  int `json:"ran_more_than_once"`
	// CompleteSeconds runs from the first submission to the latest end
	// (start + duration) of a terminal record.
	CompleteSeconds float64 `json:"complete_seconds"`
	CompletionsPerS float64 `json:"completions_per_s"`
	// SeenCompleteSeconds is when a poll (every 500 ms) first saw them all
	// terminal, from the first submission.
	SeenCompleteSeconds float64 `json:"seen_complete_seconds"`
}

// enqueue posts n async events to fn from clients goroutines, client g
// sending to server g mod 3, each waiting for its answer before the next
// request; then it polls poll's records until every acknowledged request
// ID is terminal or wait has passed.
func (b *bench) enqueue(ctx context.Context, fn string, n, clients int, poll string, wait time.Duration) (Enqueue, error) {
	res := Enqueue{Function: fn, Events: n, Clients: clients, PerServerAck: map[string]int{}}
	var (
		mu   sync.Mutex
		ids  = make([]string, 0, n)
		lats = make([]time.Duration, 0, n)
		next = make(chan int, n)
		wg   sync.WaitGroup
		last time.Time
	)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	hdr := http.Header{client.HeaderInvocationType: {"async"}}
	t0 := time.Now()
	for g := 0; g < clients; g++ {
		srv := b.c.Servers[g%len(b.c.Servers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := []byte(`{"i":` + strconv.Itoa(i) + `}`)
				start := time.Now()
				status, resp, err := b.api.Do(ctx, http.MethodPost, srv.API, "/v1/functions/"+fn+"/invoke", body, hdr)
				end := time.Now()
				var ack struct {
					RequestID string `json:"request_id"`
				}
				if err == nil && status == http.StatusAccepted {
					err = json.Unmarshal(resp, &ack)
				} else if err == nil {
					err = fmt.Errorf("%d %s", status, cluster.Short(resp))
				}
				mu.Lock()
				if err != nil || ack.RequestID == "" {
					res.Refused++
					res.LastRefusal = fmt.Sprintf("via %s: %v", srv.ID, err)
				} else {
					ids = append(ids, ack.RequestID)
					lats = append(lats, end.Sub(start))
					res.PerServerAck[srv.ID]++
					if end.After(last) {
						last = end
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.Acked = len(ids)
	res.AckSeconds = stats.Round(last.Sub(t0).Seconds())
	if res.AckSeconds > 0 {
		res.AckedPerSec = stats.Round(float64(res.Acked) / last.Sub(t0).Seconds())
	}
	res.AckLatency = stats.Summarize(lats)
	res.AckP50MS, res.AckP99MS = res.AckLatency.P50MS, res.AckLatency.P99MS
	fmt.Fprintf(os.Stderr, "acknowledged %d of %d events in %.2f s (%.0f/s), p50 %.1f ms, p99 %.1f ms; waiting for completions...\n",
		res.Acked, n, res.AckSeconds, res.AckedPerSec, res.AckP50MS, res.AckP99MS)

	deadline := time.Now().Add(wait)
	var printed time.Time
	for {
		recs, err := b.api.Invocations(ctx, poll, fn)
		if err != nil {
			return res, err
		}
		byID := make(map[string]client.Invocation, len(recs))
		for _, r := range recs {
			byID[r.ID] = r
		}
		res.Succeeded, res.Failed, res.Unfinished, res.Missing, res.Attempts2 = 0, 0, 0, 0, 0
		var end time.Time
		for _, id := range ids {
			r, ok := byID[id]
			switch {
			case !ok:
				res.Missing++
				continue
			case r.Status == client.StatusSuccess:
				res.Succeeded++
			case r.Status == client.StatusFailed || r.Status == client.StatusDeadLetter:
				res.Failed++
			default:
				res.Unfinished++
				continue
			}
			if r.Attempts > 1 {
				res.Attempts2++
			}
			if e := r.Start.Add(time.Duration(r.DurationMS * float64(time.Millisecond))); e.After(end) {
				end = e
			}
		}
		done := res.Unfinished == 0 && res.Missing == 0
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			res.SeenCompleteSeconds = stats.Round(time.Since(t0).Seconds())
			if !end.IsZero() {
				res.CompleteSeconds = stats.Round(end.Sub(t0).Seconds())
				res.CompletionsPerS = stats.Round(float64(res.Succeeded) / end.Sub(t0).Seconds())
			}
			if !done {
				fmt.Fprintf(os.Stderr, "gave up waiting after %v: %d unfinished, %d without a record\n", wait, res.Unfinished, res.Missing)
			}
			return res, ctx.Err()
		}
		if time.Since(printed) >= 5*time.Second {
			printed = time.Now()
			fmt.Fprintf(os.Stderr, "  %.1f s: %d succeeded, %d failed, %d not finished, %d without a record\n",
				time.Since(t0).Seconds(), res.Succeeded, res.Failed, res.Unfinished, res.Missing)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
