package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"nimbus/internal/model"
)

// lambdaInvoke is the Lambda API's Invoke: X-Amz-Invocation-Type
// RequestResponse (the default), Event or DryRun; X-Amz-Log-Type Tail
// for the last 4 KB of the log in X-Amz-Log-Result. It runs through the
// same path as the native invoke (invokeSync, enqueueAsync), so limits,
// records and metrics are the same.
func (g *Gateway) lambdaInvoke(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	id := newRequestID()
	w.Header().Set("X-Amzn-RequestId", id)
	name, qualifier, err := g.lambdaFunctionRef(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	invocationType := r.Header.Get("X-Amz-Invocation-Type")
	limit := int64(maxSyncPayload)
	switch invocationType {
	case "", "RequestResponse", "DryRun":
	case "Event":
		limit = maxAsyncPayload
	default:
		g.writeLambdaError(w, invalidParam("X-Amz-Invocation-Type %q is not RequestResponse, Event or DryRun", invocationType))
		return
	}
	switch logType := r.Header.Get("X-Amz-Log-Type"); logType {
	case "", "None", "Tail":
	default:
		g.writeLambdaError(w, invalidParam("X-Amz-Log-Type %q is not None or Tail", logType))
		return
	}
	payload, _ := io.ReadAll(r.Body) // lambdaAllow read it whole
	if int64(len(payload)) > limit {
		g.writeLambdaError(w, lambdaErr(http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			"the request payload is %d bytes: an invocation of type %s takes at most %s", len(payload), orDefault(invocationType, "RequestResponse"), sizeLimit(limit)))
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	} else if !json.Valid(payload) {
		g.writeLambdaError(w, lambdaErr(http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: the payload is not valid JSON"))
		return
	}
	ref := name
	if qualifier != "" {
		ref += ":" + qualifier
	}
	fn, err := caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return g.svc.Resolve(ns, ref) })
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.Header().Set("X-Amz-Executed-Version", model.VersionString(fn.Version))
	switch invocationType {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		if err := g.enqueueAsync(r.Context(), id, fn, payload); err != nil {
			g.writeLambdaError(w, err)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	run, err := g.invokeSync(r, id, fn, "sync", payload)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	h := w.Header()
	if run.ErrorType != "" {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	if r.Header.Get("X-Amz-Log-Type") == "Tail" {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte(run.logTail)))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(run.Payload)))
	w.WriteHeader(http.StatusOK)
	w.Write(run.Payload)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
