package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// streamMode is how a synchronous invoke asks for its result streamed:
// "sse" (Accept: text/event-stream), "raw" (?stream=true: the chunks as
// the body, chunked), or "" (not streamed).
func streamMode(r *http.Request) string {
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return "sse"
	}
	if v, _ := strconv.ParseBool(r.URL.Query().Get("stream")); v {
		return "raw"
	}
	return ""
}

// invokeStreamed runs a synchronous invocation whose result the client
// takes as it is produced: each chunk a generator handler yields is
// written and flushed at once (its next chunk waits until then). Raw: the
// body is the chunks, and a failure after the first chunk is told by the
// trailers X-Nimbus-Function-Error and X-Nimbus-Error-Type; a result that
// was not streamed (a plain return value, or a failure before any chunk)
// is answered as the plain invoke answers it. SSE: `event: chunk` for
// each chunk (the plain result as one), then `event: end` with
// {request_id, error_type, error}.
func (g *Gateway) invokeStreamed(w http.ResponseWriter, r *http.Request, id string, fn model.Function, payload []byte, sse bool) {
	rc := http.NewResponseController(w)
	h := w.Header()
	started := false
	begin := func() {
		if started {
			return
		}
		started = true
		if sse {
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Trailer", client.HeaderFunctionError+", "+client.HeaderErrorType)
		}
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
	}
	chunk := func(b []byte) {
		begin()
		if sse {
			writeSSE(w, "chunk", b)
		} else {
			w.Write(b)
		}
		rc.Flush()
	}
	run, err := g.runSync(r.Context(), r, id, fn, "sync", "sync", payload, false, chunk)
	if err != nil {
		if !started {
			writeError(w, g.log, err)
		}
		return
	}
	if run.Cold && !started {
		h.Set(client.HeaderColdStart, "true") // an SSE answer's headers are still to go
	}
	switch {
	case sse:
		if !started {
			chunk(run.Payload) // not streamed: the result (or the error) as one chunk
		}
		end := map[string]any{"request_id": id}
		if run.ErrorType != "" {
			end["error_type"] = run.ErrorType
			end["error"] = json.RawMessage(run.Payload)
		}
		b, _ := json.Marshal(end)
		writeSSE(w, "end", b)
	case started:
		if run.ErrorType != "" {
			h.Set(client.HeaderFunctionError, "Unhandled")
			h.Set(client.HeaderErrorType, run.ErrorType)
		}
	default: // not streamed: as the plain invoke answers
		writeResult(w, r, run)
		return
	}
	rc.Flush()
}

// writeSSE writes one server-sent event; data's lines become data: lines
// (a client joins them with newlines again).
func writeSSE(w http.ResponseWriter, event string, data []byte) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "event: %s\n", event)
	for _, line := range bytes.Split(data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(bytes.TrimSuffix(line, []byte("\r")))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
	w.Write(buf.Bytes())
}
