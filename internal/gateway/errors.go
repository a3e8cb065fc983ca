package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/codepkg"
	"nimbus/internal/controlplane"
	"nimbus/internal/datadir"
	"nimbus/internal/deps"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// apiError is an error the gateway raises itself, with its status and code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, "BadRequest", msg} }

// maxListLimit is the most items one list request may ask for.
const maxListLimit = 10000

// queryLimit reads a list's ?limit=: def when absent, else a whole number
// from 1 to maxLimit (400 otherwise, naming the value).
func queryLimit(r *http.Request, def, maxLimit int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > maxLimit {
		return 0, badRequest(fmt.Sprintf("limit=%q is not a number between 1 and %d", s, maxLimit))
	}
	return n, nil
}

// firstN returns at most n items of list (all of them when n is 0).
func firstN[T any](list []T, n int) []T {
	if n > 0 && len(list) > n {
		return list[:n]
	}
	return list
}

// StatusClientClosed is the status (nginx's 499) of a request whose client
// went away before its answer: nobody reads it, but logs and metrics name
// the outcome for what it is, the client's doing and not a platform fault.
const StatusClientClosed = 499

// errClientClosed marks an error that came from the client closing its
// connection (its request's context ended) before the answer.
var errClientClosed = errors.New("the client closed its connection before the answer")

// clientClosed wraps err, an error met while serving r, as the client's
// doing when r's context has ended: the client went away.
func clientClosed(r *http.Request, err error) error {
	if err == nil || r.Context().Err() == nil {
		return err
	}
	return fmt.Errorf("%w: %w", errClientClosed, err)
}

// statusOf maps an error to its HTTP status and code. This is the one
// place where errors become statuses.
func statusOf(err error) (int, string) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, errClientClosed):
		return StatusClientClosed, "ClientClosed"
	case errors.As(err, &mbe), errors.Is(err, codepkg.ErrTooLarge), errors.Is(err, service.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge"
	case errors.Is(err, state.ErrNotFound), errors.Is(err, blob.ErrNotFound), errors.Is(err, placement.ErrUnknownWorker):
		return http.StatusNotFound, "NotFound"
	case errors.Is(err, codepkg.ErrInvalidPackage), errors.Is(err, codepkg.ErrInvalidConfig), errors.Is(err, python.ErrUnknownRuntime):
		return http.StatusBadRequest, "BadRequest"
	case errors.Is(err, state.ErrInvalid), errors.Is(err, deps.ErrInvalidRequirements):
		return http.StatusBadRequest, "BadRequest"
	case errors.Is(err, deps.ErrBuildFailed):
		return http.StatusUnprocessableEntity, "BuildFailed"
	case errors.Is(err, deps.ErrCannotBuild):
		return http.StatusServiceUnavailable, "CannotBuild"
	case errors.Is(err, service.ErrForbidden):
		return http.StatusForbidden, "Forbidden"
	case errors.Is(err, service.ErrScanBlocked):
		return http.StatusUnprocessableEntity, "CodeScanBlocked"
	case errors.Is(err, placement.ErrWorkerDead), errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrNotEmpty):
		return http.StatusConflict, "Conflict"
	case errors.As(err, new(*service.NotLeaderError)):
		return http.StatusConflict, "NotLeader"
	case errors.Is(err, service.ErrBackupsOff):
		return http.StatusNotImplemented, "NotImplemented"
	case errors.Is(err, service.ErrBudgetExceeded):
		return http.StatusTooManyRequests, "BudgetExceeded"
	case errors.Is(err, worker.ErrNoCapacity), errors.Is(err, placement.ErrConcurrencyLimit):
		return http.StatusTooManyRequests, "TooManyRequests"
	case errors.Is(err, controlplane.ErrNotLeader), errors.Is(err, worker.ErrClosed), errors.Is(err, placement.ErrNoWorkers),
		errors.Is(err, blob.ErrQuorum), errors.Is(err, controlplane.ErrNotMember), errors.Is(err, controlplane.ErrCatchingUp),
		errors.Is(err, ErrStarting):
		return http.StatusServiceUnavailable, "ServiceUnavailable"
	case datadir.IsFull(err):
		return http.StatusInsufficientStorage, "InsufficientStorage"
	}
	return http.StatusInternalServerError, "InternalError"
}

// writeError answers with the JSON error shape of docs/spec.md §5. The
// message of a 500 is not the error's, which may name host paths or
// internals: it gives an error id that the server's log line (with the
// error) carries too. A full disk (507) answers with datadir.ErrFull's
// message alone; whoever met it logged its detail (datadir.Monitor).
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	status, code, msg := explain(log, err)
	if be := (*service.BudgetExceededError)(nil); errors.As(err, &be) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(time.Until(be.Until).Seconds()))))
	}
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && !errors.Is(err, controlplane.ErrNotMember) &&
		w.Header().Get("Retry-After") == "" { // a rate limit said when
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, client.ErrorBody{Error: client.APIError{Code: code, Message: msg}})
}

// explain is what an error answers: its status, its code and the
// message a person reads (an internal error's details go to the log
// only, under an id the message gives).
func explain(log *slog.Logger, err error) (status int, code, msg string) {
	status, code = statusOf(err)
	msg = err.Error()
	switch status {
	case http.StatusInternalServerError:
		id := newErrorID()
		log.Error("request failed", "err", err, "error_id", id)
		msg = fmt.Sprintf("internal error %s: the server's log has the details", id)
	case http.StatusInsufficientStorage:
		msg = datadir.ErrFull.Error()
	}
	return status, code, msg
}

// newErrorID returns 8 random hex digits naming one internal error.
func newErrorID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writePut answers a PUT with the object it stored: 201 when it created
// it, 200 when it replaced one.
func writePut(w http.ResponseWriter, created bool, v any) {
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeStrict reads a JSON body of at most limit bytes into v, refusing
// unknown fields (400, or 413 beyond the limit, naming what).
func decodeStrict(w http.ResponseWriter, r *http.Request, v any, limit int64, what string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, what+" is not valid JSON")
	}
	return nil
}

// nameFromPath checks an object's name against its path's: a body may
// leave the name out (it is the path's) but not name another, and the
// name must match re, described by rule.
func nameFromPath(kind string, name *string, path string, re *regexp.Regexp, rule string) error {
	if *name == "" {
		*name = path
	}
	if *name != path {
		return badRequest(fmt.Sprintf("%s name %q does not match the path's %q", kind, *name, path))
	}
	if !re.MatchString(path) {
		return badRequest(fmt.Sprintf("%s name %q must be %s", kind, path, rule))
	}
	return nil
}

// dnsLabelRule describes dnsLabelRe, the rule of namespace and schedule
// names.
const dnsLabelRule = "1-63 characters of a-z, 0-9 and '-', starting with a letter"

var dnsLabelRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
