package fsm

import (
	"errors"

	"nimbus/internal/state"
)

// errorCodes names the errors an apply may return that callers tell
// apart (with errors.Is), so that a leader applying a follower's command
// can send the error back as a code and the follower can return an error
// that is the same sentinel with the same message: a request answers the
// same on every server. Append only; a code is never reused.
var errorCodes = []struct {
	code string
	err  error
}{
	{"not_found", state.ErrNotFound},
	{"not_empty", state.ErrNotEmpty},
	{"slot_fired", state.ErrSlotFired},
	{"stale_lease", state.ErrStaleLease},
	{"conflict", state.ErrConflict},
	{"invalid", state.ErrInvalid},
}

// ErrorCode is the code of err's sentinel, or "" when it has none.
func ErrorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// ErrorFromCode rebuilds, on a follower, an error a leader sent as code
// and message: it reads as message and is the code's sentinel for
// errors.Is. An unknown code (from a newer release) gives a plain error.
func ErrorFromCode(code, message string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return state.Errorf(c.err, "%s", message)
		}
	}
	return errors.New(message)
}
