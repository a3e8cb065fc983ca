package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// every is the schedules' interval. @every fires on the multiples of the
// interval since the Unix epoch, so all schedules share each slot.
const every = 10 * time.Second

// Schedules is part 3: scheduler lag with many schedules.
type Schedules struct {
	Function  string `json:"function"`
	Schedules int    `json:"schedules"`
	Expr      string `json:"expression"`
	// CreateSeconds is how long creating them took (PUT /v1/schedules,
	// from the same concurrent clients).
	CreateSeconds float64 `json:"create_seconds"`
	CreateRefused int     `json:"create_refused"`
	// The measured slots are those from the first slot after creation
	// ended, through the end of the window.
	WindowSeconds float64  `json:"window_seconds"`
	Slots         []string `json:"slots"`
	// Expected is schedules × slots; Fires the fire records seen for
	// those slots; NotFired the rest when collection ended (a slot that
	// fired too late collapses into the next and is counted as missed).
	Expected int `json:"expected_fires"`
	Fires    int `json:"fires"`
	NotFired int `json:"not_fired"`
	// Lag is when a poll of a follower (one a second, each taking
	// PollMS) first saw a fire's record, minus its slot: an upper bound
	// of the lag, late by at most one poll.
	Lag      stats.Summary `json:"lag"`
	LagP50MS float64       `json:"lag_p50_ms"`
	LagP99MS float64       `json:"lag_p99_ms"`
	PollMS   stats.Summary `json:"poll_ms"`
	// RecordedLag is the record's enqueued_at minus its slot. The
	// scheduler stamps every fire of one pass over the schedules with the
	// time the pass began, so this is when the pass began, not when the
	// fire was committed.
	RecordedLag      stats.Summary `json:"recorded_lag"`
	RecordedLagP99MS float64       `json:"recorded_lag_p99_ms"`
	PerSlot          []SlotFires   `json:"per_slot"`
	// MissedTotal sums the schedules' missed counters at the end.
	MissedTotal int64 `json:"missed_total"`
}

// SlotFires is what one slot saw, by lag seen.
type SlotFires struct {
	Slot    string  `json:"slot"`
	Fires   int     `json:"fires"`
	FirstMS float64 `json:"first_seen_lag_ms"`
	LastMS  float64 `json:"last_seen_lag_ms"`
}

// schedules creates n schedules on fn, then collects fire records for
// window from poll and reports the lag of the slots in the window.
func (b *bench) schedules(ctx context.Context, fn string, n, clients int, poll string, window time.Duration) (Schedules, error) {
	res := Schedules{Function: fn, Schedules: n, Expr: "@every " + every.String(), WindowSeconds: window.Seconds()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next = make(chan int, n)
	)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	t0 := time.Now()
	var lastErr string
	for g := 0; g < clients; g++ {
		srv := b.c.Servers[g%len(b.c.Servers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("s%05d", i)
				body, _ := json.Marshal(map[string]string{"function": fn, "expression": res.Expr})
				status, resp, err := b.api.Do(ctx, http.MethodPut, srv.API, "/v1/schedules/"+name, body, nil)
				if err == nil && status != http.StatusOK && status != http.StatusCreated {
					err = fmt.Errorf("%d %s", status, cluster.Short(resp))
				}
				if err != nil {
					mu.Lock()
					res.CreateRefused++
					lastErr = err.Error()
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	created := time.Now()
	res.CreateSeconds = stats.Round(created.Sub(t0).Seconds())
	fmt.Fprintf(os.Stderr, "created %d schedules in %.1f s (%d refused%s)\n", n-res.CreateRefused, res.CreateSeconds, res.CreateRefused, suffix(lastErr))

	first := created.Truncate(every).Add(every)
	end := created.Add(window)
	var slots []time.Time
	for s := first; !s.After(end); s = s.Add(every) {
		slots = append(slots, s)
		res.Slots = append(res.Slots, s.UTC().Format(time.RFC3339))
	}
	res.Expected = len(slots) * (n - res.CreateRefused)
	inWindow := func(slot time.Time) bool { return !slot.Before(first) && !slot.After(slots[len(slots)-1]) }

	// Fire records by ID, from polls every second: the list gives the
	// newest 10,000 records.
	type fire struct{ seen, recorded time.Duration }
	fires := map[string]fire{}
	bySlot := map[int64][]time.Duration{}
	var polls []time.Duration
	collect := func() error {
		start := time.Now()
		recs, err := b.api.Invocations(ctx, poll, fn)
		if err != nil {
			return err
		}
		polls = append(polls, time.Since(start))
		for _, r := range recs {
			slot, ok := slotOf(r.ID)
			if !ok || !inWindow(slot) || r.EnqueuedAt.IsZero() {
				continue
			}
			if _, seen := fires[r.ID]; seen {
				continue
			}
			f := fire{seen: start.Sub(slot), recorded: r.EnqueuedAt.Sub(slot)}
			fires[r.ID] = f
			bySlot[slot.Unix()] = append(bySlot[slot.Unix()], f.seen)
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "collecting the fires of %d slots (%s to %s)...\n", len(slots), res.Slots[0], res.Slots[len(res.Slots)-1])
	// Collect until the window has ended and either every expected fire
	// is seen or every schedule has moved past the last slot (the rest
	// were missed), or 60 s past the window.
	hardEnd := end.Add(60 * time.Second)
	var printed time.Time
	for {
		if err := collect(); err != nil {
			return res, err
		}
		now := time.Now()
		if time.Since(printed) >= 5*time.Second {
			printed = now
			fmt.Fprintf(os.Stderr, "  %.0f s: %d of %d fires seen\n", now.Sub(created).Seconds(), len(fires), res.Expected)
		}
		if now.After(end) {
			if len(fires) >= res.Expected || now.After(hardEnd) {
				break
			}
			if past, err := b.allPast(ctx, poll, slots[len(slots)-1]); err != nil {
				return res, err
			} else if past {
				if err := collect(); err != nil {
					return res, err
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	var lags, recorded []time.Duration
	for _, f := range fires {
		lags, recorded = append(lags, f.seen), append(recorded, f.recorded)
	}
	res.Fires, res.NotFired = len(fires), res.Expected-len(fires)
	res.Lag, res.RecordedLag, res.PollMS = stats.Summarize(lags), stats.Summarize(recorded), stats.Summarize(polls)
	res.LagP50MS, res.LagP99MS, res.RecordedLagP99MS = res.Lag.P50MS, res.Lag.P99MS, res.RecordedLag.P99MS
	for _, s := range slots {
		ls := bySlot[s.Unix()]
		sf := SlotFires{Slot: s.UTC().Format(time.RFC3339), Fires: len(ls)}
		if len(ls) > 0 {
			sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
			sf.FirstMS, sf.LastMS = stats.MS(ls[0]), stats.MS(ls[len(ls)-1])
		}
		res.PerSlot = append(res.PerSlot, sf)
	}
	list, err := b.api.Schedules(ctx, poll)
	if err != nil {
		return res, err
	}
	for _, sc := range list {
		if sc.Function == fn {
			res.MissedTotal += sc.Missed
		}
	}
	return res, nil
}

// allPast reports whether every schedule's last slot is at or after slot.
func (b *bench) allPast(ctx context.Context, addr string, slot time.Time) (bool, error) {
	list, err := b.api.Schedules(ctx, addr)
	if err != nil {
		return false, err
	}
	for _, sc := range list {
		if sc.LastSlot.Before(slot) {
			return false, nil
		}
	}
	return true, nil
}

// slotOf parses a fire's request ID, sched-<name>-<unix seconds>.
func slotOf(id string) (time.Time, bool) {
	if !strings.HasPrefix(id, "sched-") {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(id, '-')
	sec, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

func suffix(lastErr string) string {
	if lastErr == "" {
		return ""
	}
	return "; last: " + lastErr
}
