package provided

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"nimbus/internal/runtime/python"
)

// The Runtime API's routes (version 2018-06-01), under its root path;
// {id} is a request id.
const (
	rootPath      = "/2018-06-01/runtime/"
	pathNext      = "invocation/next"          // GET
	pathResponse  = "invocation/{id}/response" // POST
	pathError     = "invocation/{id}/error"    // POST
	pathInitError = "init/error"               // POST
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

// API serves the Runtime API of one instance (Serve, http.go): one
// invocation at a time, handed over by Invoke and answered on Outcomes.
// Safe for concurrent use; the zero value is not ready, use NewAPI.
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

// next begins a GET .../next: it reports false when the bootstrap
// posted an init error (it gets no event); otherwise the bootstrap's
// init is over, and the caller waits on a.pending for the invocation.
func (a *API) next() bool {
	a.mu.Lock()
	failed := a.initFail
	a.initDone = true
	a.mu.Unlock()
	if failed {
		return false
	}
	a.readyOnce.Do(func() { close(a.ready) })
	return true
}

// answer ends invocation id with what the bootstrap posted to its
// .../response (ok) or .../error (with the Lambda-Runtime-Function-Error-
// Type header's errType), and returns the HTTP status and body of the
// post's answer.
func (a *API) answer(id string, ok bool, body []byte, errType string) (int, []byte) {
	if !a.take(id) {
		return http.StatusBadRequest, errorJSON("InvalidRequestID", "no invocation "+strconv.Quote(id)+" awaits an answer")
	}
	o := Outcome{RequestID: id, OK: ok, Body: body}
	switch {
	case !ok:
		o.Body = errorDocument(body, errType)
	case len(body) == 0:
		o.Body = []byte("null")
	case !json.Valid(body):
		// Lambda returns any bytes; Nimbus's results are JSON.
		o.Body, _ = json.Marshal(string(body))
	}
	a.end(o)
	return http.StatusAccepted, []byte(accepted)
}

// tooLarge answers a post whose body is over the limit: a response too
// large to deliver is the invocation's error, as on Lambda (id is the
// invocation the post is for, "" for an init error).
func (a *API) tooLarge(id string) (int, []byte) {
	msg := "Response payload size exceeded maximum allowed payload size (" + strconv.FormatInt(a.limit, 10) + " bytes)."
	if id != "" && a.take(id) {
		a.end(Outcome{RequestID: id, Body: errorJSON(ErrTypeTooLarge, msg)})
	}
	return http.StatusRequestEntityTooLarge, errorJSON("RequestEntityTooLarge", msg)
}

// initError takes the bootstrap's POST .../init/error, and returns the
// HTTP status and body of its answer.
func (a *API) initError(body []byte, errType string) (int, []byte) {
	a.mu.Lock()
	late := a.initDone
	a.initDone = true
	a.initFail = a.initFail || !late
	a.mu.Unlock()
	if late {
		return http.StatusForbidden, errorJSON("InvalidStateTransition", "init/error is accepted only before the first invocation/next")
	}
	a.initErr <- errorDocument(body, errType)
	return http.StatusAccepted, []byte(accepted)
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

// accepted is the body of the answer to a post the API took.
const accepted = `{"status":"OK"}`
