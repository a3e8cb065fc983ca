package model

import (
	"encoding/json"
	"regexp"
	"time"
)

// Bounds of saved test events, as Lambda's console sets them.
const (
	// MaxTestEvents is how many test events a function may have saved.
	MaxTestEvents = 10
	// MaxTestEventBytes bounds one test event's JSON.
	MaxTestEventBytes = 256 << 10
)

// testEventNameRe is a test event's name: Lambda's rule.
var testEventNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,25}$`)

// TestEventNameRule says in words what ValidTestEventName accepts.
const TestEventNameRule = "1 to 25 letters, digits, '-' or '_'"

// ValidTestEventName reports whether name is a test event's name.
func ValidTestEventName(name string) bool { return testEventNameRe.MatchString(name) }

// TestEvent is an event saved under a name for one function, shared by
// everyone who may read the function (the console's "test" button). It
// is named by its function's qualified name and its own; removing the
// function removes its test events.
type TestEvent struct {
	Namespace string          `json:"namespace,omitempty"`
	Function  string          `json:"function"`
	Name      string          `json:"name"`
	Event     json.RawMessage `json:"event"` // JSON, at most MaxTestEventBytes
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by,omitempty"` // key id or user:NAME
}
