package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// Phase is what one loading phase did.
type Phase struct {
	Done      int64         `json:"done"`
	Failed    int64         `json:"failed"`
	LastError string        `json:"last_error,omitempty"`
	Seconds   float64       `json:"seconds"`
	PerSecond float64       `json:"per_second"`
	Latency   stats.Summary `json:"latency"`
	// Stopped says the phase ran out of its time before its count.
	Stopped bool `json:"stopped_by_time,omitempty"`
}

// drive runs op for i = 0..total-1 from clients goroutines (client g sends
// one request at a time, to server g mod len(addrs)) until all are done or
// limit has passed, and times each.
func drive(ctx context.Context, addrs []string, total, clients int, limit time.Duration,
	op func(ctx context.Context, addr string, i int) error) Phase {
	var (
		next, done, failed atomic.Int64
		mu                 sync.Mutex
		lat                = make([]time.Duration, 0, min(total, 2_000_000))
		lastErr            string
		wg                 sync.WaitGroup
	)
	deadline := time.Now().Add(limit)
	t0 := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := addrs[g%len(addrs)]
			var mine []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= total {
					break
				}
				s := time.Now()
				if err := op(ctx, addr, i); err != nil {
					failed.Add(1)
					mu.Lock()
					lastErr = err.Error()
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(s))
				done.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	p := Phase{Done: done.Load(), Failed: failed.Load(), LastError: lastErr, Seconds: stats.Round(el.Seconds()),
		Latency: stats.Summarize(lat), Stopped: done.Load()+failed.Load() < int64(total)}
	p.PerSecond = stats.Round(float64(p.Done) / el.Seconds())
	return p
}

// fnName names function i.
func fnName(i int) string { return fmt.Sprintf("f%06d", i) }

// zipB64 is the one small package every function is deployed with.
func zipB64() (string, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err != nil {
		return "", err
	}
	io.WriteString(w, cluster.NoOp)
	if err := zw.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// expect checks an answer's status.
func expect(status int, body []byte, err error, what string, ok ...int) error {
	if err != nil {
		return err
	}
	for _, s := range ok {
		if status == s {
			return nil
		}
	}
	return fmt.Errorf("%s: %d %s", what, status, cluster.Short(body))
}

// deploy puts function i with the shared package.
func deploy(ctx context.Context, api *cluster.API, addr, code string, i int) error {
	body := fmt.Appendf(nil, `{"config":{"name":%q},"code_zip_base64":%q}`, fnName(i), code)
	st, b, err := api.Do(ctx, http.MethodPut, addr, "/v1/functions/"+fnName(i), body, nil)
	return expect(st, b, err, "deploy "+fnName(i), http.StatusOK, http.StatusCreated)
}

// schedName names schedule i, which fires function i at second i mod 60
// of every minute.
func schedName(i int) string { return fmt.Sprintf("s%05d", i) }

func putSchedule(ctx context.Context, api *cluster.API, addr string, i int) error {
	body := fmt.Appendf(nil, `{"function":%q,"expression":"%d * * * * *"}`, fnName(i), i%60)
	st, b, err := api.Do(ctx, http.MethodPut, addr, "/v1/schedules/"+schedName(i), body, nil)
	return expect(st, b, err, "schedule "+schedName(i), http.StatusOK, http.StatusCreated)
}

// invoke is a synchronous invocation of function i (a no-op on a
// simulated worker).
func invoke(ctx context.Context, api *cluster.API, addr string, i int) error {
	st, b, err := api.Do(ctx, http.MethodPost, addr, "/v1/functions/"+fnName(i)+"/invoke", []byte(`{}`), nil)
	return expect(st, b, err, "invoke "+fnName(i), http.StatusOK)
}
