package model

import (
	"encoding/json"
	"strings"
	"time"
)

// FunctionConfig is what a user sets for a function (the manifest and the
// config part of a deploy), as stored.
type FunctionConfig struct {
	Name        string            `json:"name"`
	Runtime     string            `json:"runtime,omitempty"`
	Handler     string            `json:"handler,omitempty"`
	MemoryMB    int               `json:"memory,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	EphemeralMB int               `json:"ephemeral_storage,omitempty"` // /tmp in MB
	Description string            `json:"description,omitempty"`

	Retries      *int          `json:"retries,omitempty"` // nil: the default (2)
	RetryDelay   Duration      `json:"retry_delay,omitempty"`
	MaxEventAge  Duration      `json:"max_event_age,omitempty"`
	Destinations *Destinations `json:"destinations,omitempty"`

	// ReservedConcurrency: nil, unreserved; 0, the function is stopped.
	ReservedConcurrency *int   `json:"reserved_concurrency,omitempty"`
	Provisioned         int    `json:"provisioned,omitempty"`
	Source              string `json:"source,omitempty"` // HOST:/path the CLI deployed from
	// Layers are the published layers the function mounts, as
	// NAME:VERSION, in the order of sys.path (at most MaxLayers).
	Layers []string `json:"layers,omitempty"`
}

// Destinations say where the outcome of an asynchronous invocation goes:
// a URL or "function:NAME".
type Destinations struct {
	OnSuccess string `json:"on_success,omitempty"`
	OnFailure string `json:"on_failure,omitempty"`
}

// Function is a deployed function at its current revision.
type Function struct {
	FunctionConfig
	Namespace  string      `json:"namespace"`
	Revision   int64       `json:"revision"`
	CodeSHA256 string      `json:"code_sha256"`
	CodeSize   int64       `json:"code_size"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	Scan       *ScanReport `json:"scan,omitempty"`
	// Deps is the dependency layer built from the package's
	// requirements.txt, mounted at /opt/python; nil without one.
	Deps *DepLayer `json:"deps,omitempty"`
	// LayerRefs are Layers resolved at deploy (digests and sizes).
	LayerRefs []LayerRef `json:"layer_refs,omitempty"`
	// Version is the published version this is a copy of, 0 for the
	// head ($LATEST). A version keeps the revision it was published from.
	Version int64 `json:"version,omitempty"`
	// Tags are the function's key-value labels (the Lambda API's
	// TagResource): they change without a new revision, and a deploy
	// keeps them.
	Tags map[string]string `json:"tags,omitempty"`
}

// Limits of a function's tags, as Lambda's.
const (
	MaxTags        = 50
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
)

// QualifiedName is the function's identity across namespaces.
func (f Function) QualifiedName() string { return QualifiedName(f.Namespace, f.Name) }

// InstanceKey names the instances that may run f: those of its head, or
// of one published version. A worker keeps the instances of each apart,
// so that invoking a version does not retire the head's or the reverse.
func (f Function) InstanceKey() string {
	if f.Version == 0 {
		return f.QualifiedName()
	}
	return f.QualifiedName() + ":" + VersionString(f.Version)
}

// ScanReport is what code scanning found in a revision.
type ScanReport struct {
	Scanner  string    `json:"scanner"`
	Findings []Finding `json:"findings,omitempty"`
	Note     string    `json:"note,omitempty"`
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

// FunctionDependents lists what names a function: what removing it would
// leave pointing at nothing.
type FunctionDependents struct {
	Schedules     []string `json:"schedules,omitempty"`     // qualified names
	Subscriptions []string `json:"subscriptions,omitempty"` // IDs of those to it alone
	Destinations  []string `json:"destinations,omitempty"`  // functions whose destination it is
	Sources       []string `json:"sources,omitempty"`       // event source mappings
	Topics        []string `json:"topics,omitempty"`        // topics it subscribes to
}

// Empty reports whether nothing names the function.
func (d FunctionDependents) Empty() bool {
	return len(d.Schedules) == 0 && len(d.Subscriptions) == 0 && len(d.Destinations) == 0 && len(d.Sources) == 0 && len(d.Topics) == 0
}

// String lists the dependents in words, for an error message.
func (d FunctionDependents) String() string {
	var parts []string
	list := func(one, many string, names []string) {
		switch len(names) {
		case 0:
		case 1:
			parts = append(parts, one+" "+names[0])
		default:
			parts = append(parts, many+" "+strings.Join(names, ", "))
		}
	}
	list("schedule", "schedules", d.Schedules)
	list("subscription", "subscriptions", d.Subscriptions)
	list("the destination of function", "the destinations of functions", d.Destinations)
	list("event source mapping", "event source mappings", d.Sources)
	list("the subscription to topic", "the subscriptions to topics", d.Topics)
	return strings.Join(parts, "; ")
}

// Duration is a time.Duration stored as a Go duration string ("1m30s");
// a bare number of seconds decodes too.
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
