package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/state"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

const maxSyncPayload = 6 << 20

// invoke runs a function synchronously: pick a worker, run, answer with
// the result, and hand the record to the batcher (off the response path).
func (g *Gateway) invoke(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set(client.HeaderRequestID, id)
	ref := r.PathValue("name")
	fn, err := caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return g.svc.Resolve(callerNS(r.Context()), ref) })
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	w.Header().Set(client.HeaderExecutedVersion, model.VersionString(fn.Version))
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
	if mode := streamMode(r); mode != "" {
		g.invokeStreamed(w, r, id, fn, payload, mode == "sse")
		return
	}
	run, err := g.invokeSync(r, id, fn, "sync", payload)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeResult(w, r, run)
}

// writeResult answers a synchronous invocation with its result (or its
// error document, marked by X-Nimbus-Function-Error), the log tail when
// asked for, and whether it was a cold start.
func writeResult(w http.ResponseWriter, r *http.Request, run syncRun) {
	h := w.Header()
	if run.ErrorType != "" {
		h.Set(client.HeaderFunctionError, "Unhandled")
	}
	if strings.EqualFold(r.Header.Get(client.HeaderLogTail), "true") {
		h.Set(client.HeaderLogResult, base64.StdEncoding.EncodeToString([]byte(run.logTail)))
	}
	if run.Cold {
		h.Set(client.HeaderColdStart, "true")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(run.Payload)))
	w.WriteHeader(http.StatusOK)
	w.Write(run.Payload)
	http.NewResponseController(w).Flush()
}

// syncRun is a synchronous run's outcome: the worker's result (a
// function error is its ErrorType) and the tail of its log as its record
// holds it.
type syncRun struct {
	worker.Result
	logTail string
}

// invokeSync is the one synchronous invocation of an HTTP client,
// whatever route it came by (the invoke route: "sync"; a function URL:
// "url"): runSync, with a client that went away told apart
// (clientClosed).
func (g *Gateway) invokeSync(r *http.Request, id string, fn model.Function, trigger string, payload []byte) (syncRun, error) {
	return g.runSync(r.Context(), r, id, fn, trigger, trigger, payload, false, nil)
}

// InvokeFor runs a synchronous invocation for a trigger inside the
// platform (an event source mapping's batch: trigger "source:NAME",
// counted in the metrics as label "source"), with the request ID it
// makes, as runSync does for a client, and returns once the invocation's
// record is committed (or held where a restart finds it): the caller
// acknowledges what it ran to a broker only then. An error with a
// result means the run ended but its record did not settle before ctx
// ended.
func (g *Gateway) InvokeFor(ctx context.Context, fn model.Function, trigger, label string, payload []byte) (worker.Result, error) {
	run, err := g.runSync(ctx, nil, newRequestID(), fn, trigger, label, payload, true, nil)
	return run.Result, err
}

// runSync admits the run within fn's concurrency limits (Admit), runs
// payload on a worker, queues the record (with trigger) and the log, and
// counts the run in the metrics under label. The record and the log are
// queued before it returns, before the answer leaves (an append under a
// lock), so that a client that lists them as soon as it has its answer
// finds them on this server; they are committed later, in batches (see
// recorder), or, with settle, committed at once and waited for
// (Service.AddRecordAndWait). With chunk, a streamed result's chunks go
// to it as they come (see worker.Request.Chunk). A run refused with 429 (a concurrency
// limit, every worker busy) counts as a throttle in the metric history
// (Service.AddThrottle). An error means no result: throttled, no
// worker, ctx ended, or, for an HTTP client's call (r not nil), the
// client went away (clientClosed).
func (g *Gateway) runSync(ctx context.Context, r *http.Request, id string, fn model.Function, trigger, label string, payload []byte, settle bool, chunk func([]byte)) (syncRun, error) {
	release, err := g.Admit(fn)
	if err != nil {
		g.metrics.observe(fn, label, "Throttled", 0, false)
		g.svc.AddThrottle(fn.Namespace, fn.Name)
		return syncRun{}, err
	}
	g.metrics.inFlight.Inc()
	res, err := g.cfg.Placer.Invoke(ctx, worker.Request{RequestID: id, Function: fn, Payload: payload, Chunk: chunk})
	g.metrics.inFlight.Dec()
	release()
	if err != nil {
		if r != nil {
			if err = clientClosed(r, err); errors.Is(err, errClientClosed) {
				g.log.Info("the client went away before its answer", "function", fn.Name, "namespace", fn.Namespace, "request_id", id, "err", err)
			}
		}
		g.metrics.observe(fn, label, outcomeOf(err), 0, false)
		if status, _ := statusOf(err); status == http.StatusTooManyRequests {
			g.svc.AddThrottle(fn.Namespace, fn.Name) // every worker busy
		}
		return syncRun{}, err
	}
	rec := worker.NewRecord(worker.Request{RequestID: id, Function: fn}, trigger, res)
	entry := model.LogEntry{RequestID: id, Namespace: fn.Namespace, Function: fn.Name, Time: rec.Start, Log: string(res.Log)}
	g.follow.publish(entry)
	// The record holds the whole log when it is short, and every server
	// keeps the record: the log store (this server's own) keeps longer
	// logs only. The logs route reads both.
	long := &entry
	if len(res.Log) < worker.LogTailBytes {
		long = nil
	}
	g.metrics.observe(fn, label, outcome(res.ErrorType), res.Duration, res.Cold)
	run := syncRun{Result: res, logTail: rec.LogTail}
	if settle {
		return run, g.svc.AddRecordAndWait(ctx, rec, long)
	}
	g.svc.AddRecord(&rec, long)
	return run, nil
}

// caughtUp reads what get returns from this server's state. A follower
// may not have applied a change made through another server a moment ago
// (a deploy, a new URL): on ErrNotFound it catches up with the leader,
// then reads again.
func caughtUp[T any](ctx context.Context, control ControlPlane, get func() (T, error)) (T, error) {
	v, err := get()
	if errors.Is(err, state.ErrNotFound) {
		if cr, ok := control.(consistentReader); ok && cr.ConsistentRead(ctx) == nil {
			v, err = get()
		}
	}
	return v, err
}

// Admit admits one invocation of fn within its namespace's budget
// (service.ErrBudgetExceeded once a hard limit is reached), its reserved
// concurrency and its namespace's limit (placement.ErrConcurrencyLimit
// otherwise); call release when it ends. The asynchronous dispatcher
// admits through it too, so both paths count against the same limits
// (a queued event refused waits in the queue).
func (g *Gateway) Admit(fn model.Function) (release func(), err error) {
	if err := g.svc.CheckBudget(fn.Namespace, time.Now()); err != nil {
		return nil, err
	}
	limit, reserved := g.cfg.Control.Store().ConcurrencyLimit(fn.Namespace)
	return g.cfg.Concurrency.Acquire(fn, placement.Limits{Namespace: limit, Reserved: reserved})
}

// readEvent reads an invocation's event: at most limit bytes (413
// beyond), JSON (400 otherwise), an empty body meaning {}.
func readEvent(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	payload, err := readBody(w, r, limit, "reading the event")
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(payload) {
		return nil, badRequest("the event is not valid JSON")
	}
	return payload, nil
}

// readBody reads r's body, at most limit bytes (413 beyond; 400, saying
// it was while doing what, when it breaks off).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, doing string) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	var payload []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= limit {
		// The length is known: read the body into a buffer of its size
		// (one copy), then to its end.
		payload = make([]byte, n)
		if _, err = io.ReadFull(body, payload); err == nil {
			var more [1]byte
			switch k, rerr := body.Read(more[:]); {
			case k > 0:
				var rest []byte
				rest, err = io.ReadAll(body)
				payload = append(append(payload, more[0]), rest...)
			case rerr != io.EOF:
				err = rerr
			}
		}
	} else {
		payload, err = io.ReadAll(body)
	}
	if err != nil {
		return nil, bodyError(err, doing)
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

// newRequestID returns a UUID of version 7 (RFC 9562): 48 bits of Unix
// milliseconds, then 12 bits of the millisecond's fraction (the RFC's
// "increased clock precision"), then 62 random bits. It has the shape of
// Lambda's request IDs, and IDs made one after another sort in time
// order: the log store's index by request ID then appends to its last
// B-tree leaves instead of dirtying a random leaf per invocation.
func newRequestID() string {
	return requestIDAt(time.Now())
}

func requestIDAt(now time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	ns := now.UnixNano()
	ms, frac := uint64(ns/1e6), uint64(ns%1e6)*4096/1e6
	binary.BigEndian.PutUint64(b[0:8], ms<<16|0x7000|frac)
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	hex.Encode(s[9:13], b[4:6])
	hex.Encode(s[14:18], b[6:8])
	hex.Encode(s[19:23], b[8:10])
	hex.Encode(s[24:36], b[10:16])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}
