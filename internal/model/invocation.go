package model

import (
	"encoding/json"
	"time"
)

// Invocation status values, as stored.
const (
	StatusQueued     = "queued"
	StatusRunning    = "running"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	StatusDeadLetter = "dead_letter"
)

// Dead-letter reasons, as stored.
const (
	ReasonRetriesExhausted = "RetriesExhausted"
	ReasonEventAgeExceeded = "EventAgeExceeded"
)

// Invocation is the record of one invocation. Its fields are also encoded
// in a binary form in RecordInvocations entries (internal/fsm/records.go),
// whose field order is fixed there, not by this declaration.
type Invocation struct {
	ID          string          `json:"id"`
	Namespace   string          `json:"namespace"`
	Function    string          `json:"function"`
	Revision    int64           `json:"revision"`
	Trigger     string          `json:"trigger"` // sync, async, schedule, destination:NAME
	Status      string          `json:"status"`
	Start       time.Time       `json:"start"`
	DurationMS  float64         `json:"duration_ms"`
	BilledMS    int64           `json:"billed_ms"`
	MemoryMB    int             `json:"memory_mb"`
	MaxMemoryMB int             `json:"max_memory_mb"`
	InitMS      float64         `json:"init_ms,omitempty"` // cold starts only
	ColdStart   bool            `json:"cold_start"`
	ErrorType   string          `json:"error_type,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	LogTail     string          `json:"log_tail,omitempty"`
	Worker      string          `json:"worker,omitempty"`
	// Asynchronous invocations only.
	Attempts    int       `json:"attempts,omitempty"`
	EnqueuedAt  time.Time `json:"enqueued_at,omitzero"`
	Destination string    `json:"destination,omitempty"` // outcome of the destination delivery
	// ProcessesLeft counts the processes left running besides the
	// interpreter when the handler returned.
	ProcessesLeft int `json:"processes_left,omitempty"`
	// CPUMS is the CPU time (user and system) the instance's cgroup used
	// for the invocation, the import included on a cold start; 0 where
	// the worker's cgroups do not account CPU.
	CPUMS float64 `json:"cpu_ms,omitempty"`
	// Version is the published version that ran, 0 for $LATEST.
	Version int64 `json:"version,omitempty"`
}

// DeadLetter is an asynchronous event that was given up on.
type DeadLetter struct {
	RequestID string          `json:"request_id"`
	Namespace string          `json:"namespace"`
	Function  string          `json:"function"`
	Event     json.RawMessage `json:"event"`
	Reason    string          `json:"reason"` // ReasonRetriesExhausted or ReasonEventAgeExceeded
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	At        time.Time       `json:"at"`
	Trigger   string          `json:"trigger"`
}

// QueueItem is one acknowledged asynchronous event, queued or leased.
type QueueItem struct {
	RequestID  string          `json:"request_id"`
	Namespace  string          `json:"namespace,omitempty"` // "": the default namespace
	Function   string          `json:"function"`
	Event      json.RawMessage `json:"event"`
	Trigger    string          `json:"trigger"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	Seq        uint64          `json:"seq"` // arrival order, assigned by Apply
	Attempts   int             `json:"attempts"`
	NotBefore  time.Time       `json:"not_before,omitzero"`
	Epoch      uint64          `json:"epoch"`                // bumped by every lease
	LeaseUntil time.Time       `json:"lease_until,omitzero"` // zero when not leased
	LastError  string          `json:"last_error,omitempty"`
	Redriven   bool            `json:"redriven,omitempty"` // queued again by Redrive
}

// Leased reports whether the item is leased as of now.
func (q *QueueItem) Leased(now time.Time) bool {
	return !q.LeaseUntil.IsZero() && now.Before(q.LeaseUntil)
}

// Retention bounds how many invocation records the store keeps. It travels
// inside each record batch so that every server prunes identically.
type Retention struct {
	PerFunction int           `json:"per_function"` // records kept per function, newest first
	MaxAge      time.Duration `json:"max_age"`      // nanoseconds; older records are dropped
	// How long the metric history keeps its minutes, hours and days
	// (zero: 48 hours, 90 days, 2 years; see internal/state/metrics.go).
	MetricMinutes time.Duration `json:"metric_minutes,omitempty"`
	MetricHours   time.Duration `json:"metric_hours,omitempty"`
	MetricDays    time.Duration `json:"metric_days,omitempty"`
}

// DefaultRetention keeps 1,000 records per function for 7 days.
func DefaultRetention() Retention {
	return Retention{PerFunction: 1000, MaxAge: 7 * 24 * time.Hour}
}

// LogEntry is one invocation's log as a server's log store (logs.db)
// keeps it.
type LogEntry struct {
	RequestID string    `json:"request_id"`
	Namespace string    `json:"namespace,omitempty"`
	Function  string    `json:"function"`
	Time      time.Time `json:"time"`
	Log       string    `json:"log"`
	Truncated bool      `json:"truncated,omitempty"`
}
