package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"nimbus/internal/placement"
	"nimbus/internal/state"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

const (
	maxSyncPayload = 6 << 20
	logTailBytes   = 4 << 10
)

// invoke runs a function synchronously: pick a worker, run, answer with
// the result, and hand the record to the batcher (off the response path).
func (g *Gateway) invoke(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set(client.HeaderRequestID, id)
	name := client.QualifiedName(callerNS(r.Context()), r.PathValue("name"))
	fn, err := g.cfg.Control.Store().Function(name)
	if errors.Is(err, state.ErrNotFound) {
		// A follower may not have applied a deploy made through another
		// server a moment ago: catch up with the leader, then look again.
		if cr, ok := g.cfg.Control.(consistentReader); ok && cr.ConsistentRead(r.Context()) == nil {
			fn, err = g.cfg.Control.Store().Function(name)
		}
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	switch t := r.Header.Get(client.HeaderInvocationType); {
	case strings.EqualFold(t, "async") || strings.EqualFold(t, "Event"):
		g.invokeAsync(w, r, id, fn)
		return
	case t != "" && !strings.EqualFold(t, "sync") && !strings.EqualFold(t, "RequestResponse"):
		writeError(w, g.log, badRequest(fmt.Sprintf("%s %q is not sync or async", client.HeaderInvocationType, t)))
		return
	}
	payload, err := readEvent(w, r, maxSyncPayload)
	if err != nil {
		writeError(w, g.log, err)
		return
	}

	release, err := g.Admit(fn)
	if err != nil {
		g.metrics.observe(fn, "Throttled", 0, false)
		writeError(w, g.log, err)
		return
	}
	g.metrics.inFlight.Inc()
	res, err := g.cfg.Placer.Invoke(r.Context(), worker.Request{RequestID: id, Function: fn, Payload: payload})
	g.metrics.inFlight.Dec()
	release()
	if err != nil {
		g.metrics.observe(fn, outcomeOf(err), 0, false)
		writeError(w, g.log, err)
		return
	}
	g.metrics.observe(fn, outcome(res.ErrorType), res.Duration, res.Cold)

	rec := client.Invocation{
		ID:          id,
		Namespace:   fn.Namespace,
		Function:    fn.Name,
		Revision:    fn.Revision,
		Trigger:     "sync",
		Status:      client.StatusSuccess,
		Start:       res.Start.UTC(),
		DurationMS:  durationMS(res.Duration),
		BilledMS:    res.BilledMS,
		MemoryMB:    fn.MemoryMB,
		MaxMemoryMB: res.MaxMemoryMB,
		ColdStart:   res.Cold,
		ErrorType:   res.ErrorType,
		LogTail:     tail(res.Log, logTailBytes),
		Worker:      res.WorkerID,
	}
	if res.InitDuration > 0 {
		rec.InitMS = durationMS(res.InitDuration)
	}
	if res.ErrorType != "" {
		rec.Status = client.StatusFailed
		w.Header().Set(client.HeaderFunctionError, "Unhandled")
	}
	entry := client.LogEntry{RequestID: id, Namespace: fn.Namespace, Function: fn.Name, Time: rec.Start, Log: string(res.Log)}
	g.follow.publish(entry)
	g.recorder.add(&rec, &entry)

	if strings.EqualFold(r.Header.Get(client.HeaderLogTail), "true") {
		w.Header().Set(client.HeaderLogResult, base64.StdEncoding.EncodeToString([]byte(rec.LogTail)))
	}
	if res.Cold {
		w.Header().Set(client.HeaderColdStart, "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(res.Payload)
}

// Admit admits one invocation of fn within its reserved concurrency and
// its namespace's limit (placement.ErrConcurrencyLimit otherwise); call
// release when it ends. The asynchronous dispatcher admits through it
// too, so both paths count against the same limits.
func (g *Gateway) Admit(fn client.Function) (release func(), err error) {
	limit, reserved := g.cfg.Control.Store().ConcurrencyLimit(fn.Namespace)
	return g.cfg.Concurrency.Acquire(fn, placement.Limits{Namespace: limit, Reserved: reserved})
}

// readEvent reads an invocation's event: at most limit bytes (413
// beyond), JSON (400 otherwise), an empty body meaning {}.
func readEvent(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, bodyError(err, "reading the event")
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(payload) {
		return nil, badRequest("the event is not valid JSON")
	}
	return payload, nil
}

func outcome(errorType string) string {
	switch {
	case errorType == "":
		return "success"
	case strings.HasPrefix(errorType, "Sandbox."):
		return errorType
	}
	return "error"
}

func outcomeOf(err error) string {
	_, code := statusOf(err)
	return code
}

// tail returns the last n bytes of b as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// newRequestID returns a random UUID (version 4), the shape Lambda uses.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// durationMS converts a duration to float milliseconds.
func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
