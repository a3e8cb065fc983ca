package provided

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"nimbus/internal/runtime/python"
	"strconv"
	"sync"
	"time"
)

// Paths of the Runtime API (version 2018-06-01) the server answers.
const (
	pathNext      = "GET /2018-06-01/runtime/invocation/next"
	pathResponse  = "POST /2018-06-01/runtime/invocation/{id}/response"
	pathError     = "POST /2018-06-01/runtime/invocation/{id}/error"
	pathInitError = "POST /2018-06-01/runtime/init/error"
)

// Headers of the Runtime API.
const (
	HeaderRequestID       = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadline        = "Lambda-Runtime-Deadline-Ms"
	HeaderFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID         = "Lambda-Runtime-Trace-Id"
	HeaderClientContext   = "Lambda-Runtime-Client-Context"
	HeaderCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	HeaderErrorType       = "Lambda-Runtime-Function-Error-Type"
)

// Error types the server reports on a bootstrap's behalf.
const (
	// ErrTypeExit: the bootstrap exited before asking for its first
	// event, or during an invocation.
	ErrTypeExit = "Runtime.ExitError"
	// ErrTypeInvalidEntrypoint: the bootstrap could not be started (not
	// found, not executable, its interpreter missing).
	ErrTypeInvalidEntrypoint = "Runtime.InvalidEntrypoint"
	// ErrTypeUnknown: the bootstrap posted an error without a type.
	ErrTypeUnknown = "Unhandled"
	// ErrTypeTooLarge: the bootstrap posted a response over the limit.
	ErrTypeTooLarge = "Function.ResponseSizeTooLarge"
)

// Invocation is one event handed to the bootstrap.
type Invocation struct {
	RequestID string
	Deadline  time.Time // sent in milliseconds since the epoch
	Event     []byte    // JSON
	TraceID   string
}

// Outcome is how the bootstrap ended an invocation: a result (JSON), or
// an error document ({"errorMessage","errorType","stackTrace"?}).
type Outcome struct {
	RequestID string
	OK        bool
	Body      []byte
}

// API serves the Runtime API of one instance: one invocation at a time,
// handed over by Invoke and answered on Outcomes. Safe for concurrent
// use; the zero value is not ready, use NewAPI.
type API struct {
	arn   string
	limit int64 // bytes of a response or error document

	pending  chan Invocation // at most one, waiting for .../next
	outcomes chan Outcome    // at most one, waiting for the frame loop
	ready    chan struct{}   // closed at the first .../next
	initErr  chan []byte     // the document of an .../init/error, once

	mu        sync.Mutex
	initDone  bool   // ready closed or an init error posted: no more init errors
	initFail  bool   // an init error was posted: the bootstrap gets no event
	current   string // the request id of the invocation the bootstrap holds
	answered  bool   // current has its outcome
	readyOnce sync.Once

	deliver func(Outcome) // see OnOutcome; nil for none
}

// NewAPI returns the API of a function whose ARN is arn, taking results
// and error documents of at most limit bytes.
func NewAPI(arn string, limit int64) *API {
	return &API{arn: arn, limit: limit, pending: make(chan Invocation, 1), outcomes: make(chan Outcome, 1),
		ready: make(chan struct{}), initErr: make(chan []byte, 1)}
}

// Handler serves the Runtime API's routes; anything else is 404.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathNext, a.next)
	mux.HandleFunc(pathResponse, a.response)
	mux.HandleFunc(pathError, a.invocationError)
	mux.HandleFunc(pathInitError, a.initError)
	return mux
}

// Ready is closed when the bootstrap first asks for an event: its init
// is over.
func (a *API) Ready() <-chan struct{} { return a.ready }

// InitErrors delivers the error document of an .../init/error, at most
// once, and only before Ready.
func (a *API) InitErrors() <-chan []byte { return a.initErr }

// Outcomes delivers each invocation's outcome, once.
func (a *API) Outcomes() <-chan Outcome { return a.outcomes }

// OnOutcome has f called with each outcome before it is put on
// Outcomes: on the goroutine of the request that ended the invocation,
// before that request is answered, so that what f sends on (the
// instance's response frame) goes out ahead of the bootstrap's answer
// and of anything it does next. Calls of f do not overlap: each is for
// an invocation Abandon did not take. Set it before serving.
func (a *API) OnOutcome(f func(Outcome)) { a.deliver = f }

// Abandon takes invocation id away from the bootstrap (it died holding
// it): it reports whether id awaited its outcome; false when a request
// ended it already, whose outcome is then being delivered or was.
func (a *API) Abandon(id string) bool { return a.take(id) }

// Invoke hands inv to the bootstrap's next (or pending) .../next. The
// caller waits for its outcome before the next Invoke.
func (a *API) Invoke(inv Invocation) {
	a.mu.Lock()
	a.current, a.answered = inv.RequestID, false
	a.mu.Unlock()
	a.pending <- inv
}

func (a *API) next(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	failed := a.initFail
	a.initDone = true
	a.mu.Unlock()
	if failed {
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "the runtime posted an init error: it gets no event")
		return
	}
	a.readyOnce.Do(func() { close(a.ready) })
	var inv Invocation
	select {
	case inv = <-a.pending:
	case <-r.Context().Done():
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderRequestID, inv.RequestID)
	h.Set(HeaderDeadline, strconv.FormatInt(inv.Deadline.UnixMilli(), 10))
	h.Set(HeaderFunctionARN, a.arn)
	if inv.TraceID != "" {
		h.Set(HeaderTraceID, inv.TraceID)
	}
	w.WriteHeader(http.StatusOK)
	w.Write(inv.Event)
}

func (a *API) response(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	switch {
	case len(body) == 0:
		body = []byte("null")
	case !json.Valid(body):
		// Lambda returns any bytes; Nimbus's results are JSON.
		body, _ = json.Marshal(string(body))
	}
	a.finish(w, r.PathValue("id"), Outcome{OK: true, Body: body})
}

func (a *API) invocationError(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	a.finish(w, r.PathValue("id"), Outcome{Body: errorDocument(body, r.Header.Get(HeaderErrorType))})
}

func (a *API) initError(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	late := a.initDone
	a.initDone = true
	a.initFail = a.initFail || !late
	a.mu.Unlock()
	if late {
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "init/error is accepted only before the first invocation/next")
		return
	}
	a.initErr <- errorDocument(body, r.Header.Get(HeaderErrorType))
	accepted(w)
}

// readBody reads a request's body, at most a.limit bytes; past it, it
// answers 413 and fails the current invocation (a response too large to
// deliver is the invocation's error, as on Lambda).
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		msg := "Response payload size exceeded maximum allowed payload size (" + strconv.FormatInt(a.limit, 10) + " bytes)."
		if id := r.PathValue("id"); id != "" && a.take(id) {
			a.end(Outcome{RequestID: id, Body: errorJSON(ErrTypeTooLarge, msg)})
		}
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "InvalidRequest", "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// finish delivers o as the outcome of invocation id, if the bootstrap
// holds it and has not answered it yet.
func (a *API) finish(w http.ResponseWriter, id string, o Outcome) {
	if !a.take(id) {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+strconv.Quote(id)+" awaits an answer")
		return
	}
	o.RequestID = id
	a.end(o)
	accepted(w)
}

// end delivers the outcome of the invocation take gave the caller.
func (a *API) end(o Outcome) {
	if a.deliver != nil {
		a.deliver(o)
	}
	a.outcomes <- o
}

// take reports whether id is the invocation awaiting its outcome, and
// marks it answered.
func (a *API) take(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id == "" || id != a.current || a.answered {
		return false
	}
	a.answered = true
	return true
}

// errorDocument makes what a bootstrap posted as an error into Lambda's
// error document: its errorMessage, errorType (else the
// Lambda-Runtime-Function-Error-Type header's, else Unhandled) and
// stackTrace if any; a body that is not such a document becomes the
// message.
func errorDocument(body []byte, headerType string) []byte {
	var doc struct {
		ErrorMessage string          `json:"errorMessage"`
		ErrorType    string          `json:"errorType"`
		StackTrace   json.RawMessage `json:"stackTrace,omitempty"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		doc.ErrorMessage, doc.ErrorType, doc.StackTrace = string(body), "", nil
	}
	if doc.ErrorType == "" {
		doc.ErrorType = headerType
	}
	if doc.ErrorType == "" {
		doc.ErrorType = ErrTypeUnknown
	}
	if string(doc.StackTrace) == "null" {
		doc.StackTrace = nil
	}
	out, _ := json.Marshal(doc)
	return out
}

// errorJSON renders an error document of the server's own, as the
// Python runtime renders the platform's.
func errorJSON(errType, msg string) []byte { return python.ErrorJSON(errType, msg) }

// accepted answers a post the API took.
func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

// writeError answers a request the API refuses, in Lambda's shape.
func writeError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(errorJSON(errType, msg))
}
