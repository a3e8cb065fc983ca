// Package client is the Go client for the Nimbus REST API (docs/spec.md §5)
// and the home of its wire types. The CLI speaks to servers only through it.
package client

import (
	"encoding/json"
	"time"
)

// FunctionConfig is what a user sets for a function: the manifest
// (nimbus.yaml) and the `config` part of a deploy.
type FunctionConfig struct {
	Name     string            `json:"name"`
	Runtime  string            `json:"runtime,omitempty"`
	Handler  string            `json:"handler,omitempty"`
	MemoryMB int               `json:"memory,omitempty"`
	Timeout  Duration          `json:"timeout,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	// EphemeralMB is the size of the function's /tmp in MB.
	EphemeralMB int    `json:"ephemeral_storage,omitempty"`
	Description string `json:"description,omitempty"`

	// Asynchronous invocation (docs/spec.md §6).
	Retries      *int          `json:"retries,omitempty"`       // 0..2, default 2
	RetryDelay   Duration      `json:"retry_delay,omitempty"`   // default 1m, doubling each try
	MaxEventAge  Duration      `json:"max_event_age,omitempty"` // 60s..6h, default 6h
	Destinations *Destinations `json:"destinations,omitempty"`

	// ReservedConcurrency, when set, is both the most invocations of
	// this function that run at once and a share of its namespace's
	// concurrency kept for it alone (Lambda's reserved concurrency). 0
	// stops the function.
	ReservedConcurrency *int `json:"reserved_concurrency,omitempty"`
	// Provisioned instances of the current revision are kept started and
	// ready at all times, spread over the workers (Lambda's provisioned
	// concurrency): invocations up to that many at once start warm.
	Provisioned int `json:"provisioned,omitempty"`

	// Source says where the CLI deployed this revision's code from
	// (HOST:/absolute/path): a hint, so that a deploy replacing a
	// function whose code came from elsewhere can say so.
	Source string `json:"source,omitempty"`
	// Layers are the published layers the function mounts, as
	// NAME:VERSION, in sys.path order (at most 5).
	Layers []string `json:"layers,omitempty"`
}

// Destinations say where the outcome of an asynchronous invocation goes:
// a URL (POSTed, signed) or "function:NAME" (enqueued as its event).
type Destinations struct {
	OnSuccess string `json:"on_success,omitempty"`
	OnFailure string `json:"on_failure,omitempty"`
}

// Function is a deployed function at its current revision.
type Function struct {
	FunctionConfig
	Namespace  string    `json:"namespace"`
	Revision   int64     `json:"revision"`
	CodeSHA256 string    `json:"code_sha256"`
	CodeSize   int64     `json:"code_size"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Scan is what code scanning found in this revision, if it ran.
	Scan *ScanReport `json:"scan,omitempty"`
	// Deps is the dependency layer built from the package's
	// requirements.txt, if it has one.
	Deps *DepLayer `json:"deps,omitempty"`
	// LayerRefs are the published layers it mounts, as resolved at
	// deploy.
	LayerRefs []LayerRef `json:"layer_refs,omitempty"`
	// Version is "$LATEST" for the function's head, else the number of
	// the published version this is.
	Version string `json:"version,omitempty"`
}

// Invocation status values.
const (
	StatusQueued     = "queued"
	StatusRunning    = "running"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	StatusDeadLetter = "dead_letter"
)

// Invocation is the record of one invocation.
type Invocation struct {
	ID          string          `json:"id"`
	Namespace   string          `json:"namespace"`
	Function    string          `json:"function"`
	Revision    int64           `json:"revision"`
	Trigger     string          `json:"trigger"` // "sync", later "async", "schedule", ...
	Status      string          `json:"status"`
	Start       time.Time       `json:"start"`
	DurationMS  float64         `json:"duration_ms"`
	BilledMS    int64           `json:"billed_ms"`
	MemoryMB    int             `json:"memory_mb"`
	MaxMemoryMB int             `json:"max_memory_mb"`
	InitMS      float64         `json:"init_ms,omitempty"` // set on cold starts
	ColdStart   bool            `json:"cold_start"`
	ErrorType   string          `json:"error_type,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	LogTail     string          `json:"log_tail,omitempty"`
	Worker      string          `json:"worker,omitempty"`
	// Asynchronous invocations only.
	Attempts    int       `json:"attempts,omitempty"`
	EnqueuedAt  time.Time `json:"enqueued_at,omitzero"`
	Destination string    `json:"destination,omitempty"` // outcome of the destination delivery

	// ProcessesLeft counts the processes the instance had running
	// besides its interpreter when the handler returned (frozen until
	// its next invocation); 0 where the executor cannot count them.
	ProcessesLeft int `json:"processes_left,omitempty"`
	// CPUMS is the CPU time (user and system) the instance used for the
	// invocation, its import included on a cold start; 0 where the
	// worker's cgroups do not account CPU.
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
	Reason    string          `json:"reason"` // RetriesExhausted or EventAgeExceeded
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	At        time.Time       `json:"at"`
	Trigger   string          `json:"trigger"`
}

// Dead-letter reasons.
const (
	ReasonRetriesExhausted = "RetriesExhausted"
	ReasonEventAgeExceeded = "EventAgeExceeded"
)

// Schedule fires a function on a cron or rate expression.
type Schedule struct {
	Name       string          `json:"name"`
	Namespace  string          `json:"namespace"`
	Function   string          `json:"function"`
	Expression string          `json:"expression"`
	Event      json.RawMessage `json:"event,omitempty"`
	Timezone   string          `json:"timezone,omitempty"`
	Policy     string          `json:"policy,omitempty"` // allow (default) or forbid
	Disabled   bool            `json:"disabled,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	// Set by the scheduler.
	LastSlot    time.Time `json:"last_slot,omitzero"`
	LastRequest string    `json:"last_request,omitempty"`
	Fires       int64     `json:"fires"`
	Missed      int64     `json:"missed"`
	NextFire    time.Time `json:"next_fire,omitzero"` // computed when read
}

// LogEntry is one invocation's log as served by the logs endpoint.
type LogEntry struct {
	RequestID string    `json:"request_id"`
	Namespace string    `json:"namespace,omitempty"`
	Function  string    `json:"function"`
	Time      time.Time `json:"time"`
	Log       string    `json:"log"`
	Truncated bool      `json:"truncated,omitempty"`
}

// Cluster is the answer of GET /v1/cluster.
type Cluster struct {
	Servers []Server `json:"servers"`
	Workers []Worker `json:"workers"`
	// NotMember, when set, says why the answering server is not a member
	// of the cluster (it was removed): its view is stale.
	NotMember string `json:"not_member,omitempty"`
}

// Server is one control-plane member.
type Server struct {
	ID        string `json:"id"`
	Address   string `json:"address"` // API address
	Raft      string `json:"raft"`
	Role      string `json:"role"` // leader, follower, candidate, nonvoter
	Term      uint64 `json:"term"`
	LastIndex uint64 `json:"last_index"`
	Healthy   bool   `json:"healthy"`
}

// Worker is one execution node as the answering server sees it.
type Worker struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	Slots         int    `json:"slots"`
	InUse         int    `json:"in_use"`
	WarmInstances int    `json:"warm_instances"`
	// Instances counts its instances, idle, busy or starting, and
	// InstanceMemoryUsed the bytes they count at against its budget of
	// InstanceMemory bytes (each at its measured footprint, or an
	// estimate where the worker cannot measure; see the spec).
	Instances          int    `json:"instances"`
	InstanceMemory     int64  `json:"instance_memory_bytes"`
	InstanceMemoryUsed int64  `json:"instance_memory_used_bytes"`
	Healthy            bool   `json:"healthy"` // ready: alive and not draining
	Executor           string `json:"executor"`
	// State is ready, draining (alive, takes no new work until
	// undrained) or dead (silent; forgotten after the server's
	// --worker-forget-after).
	State string `json:"state"`
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error APIError `json:"error"`
}

// APIError is the error inside ErrorBody; it also implements error for
// callers of this package, with the HTTP status attached.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter is the server's Retry-After hint (429, 503), zero if none.
	// Set by the client only; never serialised.
	RetryAfter time.Duration `json:"-"`
	// Leader is the API address of the leader, which a server that is
	// not the leader names for a change only the leader makes.
	Leader string `json:"-"`
}

func (e *APIError) Error() string { return e.Message }

// Duration is a time.Duration that reads and writes as "3s" in JSON and
// accepts a bare number of seconds too.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "3s", "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		*d = Duration(n * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Headers used by the invoke endpoint.
const (
	HeaderRequestID      = "X-Nimbus-Request-Id"
	HeaderFunctionError  = "X-Nimbus-Function-Error"
	HeaderInvocationType = "X-Nimbus-Invocation-Type"
	HeaderLogTail        = "X-Nimbus-Log-Tail"
	HeaderLogResult      = "X-Nimbus-Log-Result"
	HeaderColdStart      = "X-Nimbus-Cold-Start"
	// HeaderExecutedVersion is the version an invocation ran: $LATEST
	// or a published version's number (an alias's choice included).
	HeaderExecutedVersion = "X-Nimbus-Executed-Version"
	// HeaderErrorType names the error type of a streamed invocation that
	// failed after its stream began (a trailer, with HeaderFunctionError).
	HeaderErrorType = "X-Nimbus-Error-Type"
)

// HeaderNamespace names the namespace an admin key acts in (other keys
// act in their own).
const HeaderNamespace = "X-Nimbus-Namespace"

// Event is one item of the event stream (GET /v1/events).
type Event struct {
	Type       string    `json:"type"` // "invocation"
	RequestID  string    `json:"request_id"`
	Function   string    `json:"function"`
	Trigger    string    `json:"trigger"`
	Status     string    `json:"status"`
	ErrorType  string    `json:"error_type,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Time       time.Time `json:"time"`
}

// Subscription sends a notification when an invocation of a function (or
// of any function) ends in one of the given conditions.
type Subscription struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	Function  string    `json:"function,omitempty"` // "" for every function
	On        []string  `json:"on"`                 // success, failure, timeout, dead_letter
	Webhook   string    `json:"webhook,omitempty"`
	Email     string    `json:"email,omitempty"`
	Created   time.Time `json:"created_at"`
	// Warning, in the answer to a create, says why its notifications
	// may not be delivered (an e-mail one on a server without SMTP).
	Warning string `json:"warning,omitempty"`
}

// ScanReport is what code scanning found in a revision.
type ScanReport struct {
	Scanner  string    `json:"scanner"`
	Findings []Finding `json:"findings,omitempty"`
	Note     string    `json:"note,omitempty"` // e.g. that the scanner is missing
}

// Finding is one issue a scanner reported.
type Finding struct {
	TestID     string `json:"test_id"`
	Severity   string `json:"severity"` // LOW, MEDIUM, HIGH
	Confidence string `json:"confidence"`
	Text       string `json:"text"`
	File       string `json:"file"`
	Line       int    `json:"line"`
}

// AuditEntry records one change made through the API: who, what, when.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace,omitempty"`
	KeyID     string    `json:"key_id"`
	Role      string    `json:"role"`
	Action    string    `json:"action"` // METHOD PATH
	Status    int       `json:"status"`
	Server    string    `json:"server,omitempty"`
}

// DefaultNamespace exists from the start and holds every object created
// without a namespace.
const DefaultNamespace = "default"

// NamespaceOf returns ns, or the default namespace for "".
func NamespaceOf(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// QualifiedName is a function's (or schedule's) identity across
// namespaces: "namespace/name". Names cannot contain "/", so it is
// unambiguous.
func QualifiedName(ns, name string) string { return NamespaceOf(ns) + "/" + name }

// QualifiedName is the function's identity across namespaces.
func (f Function) QualifiedName() string { return QualifiedName(f.Namespace, f.Name) }

// Namespace is a tenant: every function, schedule, record, log, dead
// letter and subscription belongs to one.
type Namespace struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Concurrency is the most invocations of the namespace's functions
	// that run at once (0: no limit but the workers' slots).
	Concurrency int `json:"concurrency,omitempty"`
	// ScanPolicy overrides the server's code-scanning policy for deploys
	// in this namespace: off, warn or block[:SEVERITY] ("": the server's).
	ScanPolicy string `json:"scan_policy,omitempty"`
	// AllowSdist lets dependency builds build source distributions (in
	// the build's sandbox, which reaches only the package index).
	AllowSdist bool `json:"allow_sdist,omitempty"`
}
