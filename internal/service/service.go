// Package service owns the control plane's use cases: deploying and
// removing functions, namespaces, schedules, function URLs, event source
// mappings, subscriptions, topics (and publishing to them), keys, users
// and sessions, redriving dead letters, and building and storing
// invocation records. The gateway decodes a request, authorises it and
// calls one method here; this package validates, writes through Raft
// (fsm.Apply), and returns what the gateway encodes.
//
// Contracts:
//   - Every state change of a use case goes through fsm.Apply; nothing
//     here writes the store directly.
//   - Invariants that must hold cluster-wide (names unique, reserved
//     concurrency within the namespace's limit, a namespace emptied before
//     it is removed) are checked again by the FSM when it applies the
//     command; a check here against this server's store (which a follower
//     may hold slightly behind) only answers early.
//   - Errors are the state package's kinds (state.ErrInvalid,
//     ErrNotFound, ErrConflict, ErrNotEmpty) or this package's, built with
//     state.Errorf so that they read as a sentence; the gateway maps kinds
//     to statuses in one place.
package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/blob"
	"nimbus/internal/deps"
	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/pycheck"
	"nimbus/internal/scan"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// ErrScanBlocked refuses a deploy whose code scan found what the
// namespace's policy blocks.
var ErrScanBlocked = errors.New("the code scan blocks this deploy")

// Control is what the use cases need of the Raft node: its state (for
// reads) and the one path for writes.
type Control interface {
	Store() *state.Store
	fsm.Writer
}

// Placer is what the use cases need of placement.
type Placer interface {
	Runtimes() []string
	Offers() []model.RuntimeOffer
	Prefetch(fn model.Function)
	Provision(fn model.Function, n int)
	Retire(qualifiedName string)
	// Run starts an interactive run on a worker with a free slot
	// (worker.ErrNoCapacity when none has one).
	Run(ctx context.Context, spec worker.RunSpec) (worker.RunConn, error)
}

var _ Placer = (*placement.Placer)(nil)

// Deps are a Service's dependencies.
type Deps struct {
	Control Control
	Blobs   *blob.Store
	Placer  Placer
	// ReplicateBlob copies a new code package to enough other servers
	// before its revision is committed; nil on a single node.
	ReplicateBlob func(ctx context.Context, data []byte) error
	// FetchBlob, when set, fetches a blob this server lacks from the
	// others; Snapshots takes and restores backups (nil: none).
	FetchBlob func(ctx context.Context, digest string) ([]byte, error)
	Snapshots Snapshotter
	// ScanPolicy and Scanner decide code scanning at deploy (Mode "" or
	// off: no scan).
	ScanPolicy scan.Policy
	Scanner    scan.Scanner
	// Checker, when set, compiles a deploy's Python and refuses code that
	// cannot be imported.
	Checker *pycheck.Checker
	// Builder, when set, builds the dependency layer of a deploy whose
	// package has a requirements.txt (refused without one).
	Builder *deps.Builder
	// Mail says whether this server can send e-mail; Clustered whether it
	// is one of several servers (the leader, which may have a relay,
	// sends notifications).
	Mail, Clustered bool
	// Woken, when set, is called after the queue gained events outside
	// the enqueuer (a redrive), to wake the dispatcher.
	Woken func()
	// Logs stores invocation logs and the records and audit entries held
	// for retry (without it, as in some tests, those are held in memory
	// only); Retention bounds the records.
	Logs      *logstore.Store
	Retention model.Retention
	Log       *slog.Logger
	// Registry, when set, gets the record batcher's metrics.
	Registry prometheus.Registerer
	// Concurrency, when set, admits interactive runs within their
	// namespace's concurrency limit, counted with its invocations.
	Concurrency *placement.Concurrency
	// Slots, when set, counts the workers' slots (queued runs'
	// estimates).
	Slots func() int
	// Loads, when set, is the workers' load the scaling signal reads;
	// Scaling shapes that signal.
	Loads   ScalingLoads
	Scaling ScalingPolicy
}

// Service holds the use cases. Its methods are safe for concurrent use.
type Service struct {
	d     Deps
	store *state.Store
	rec   *recorder
	log   *slog.Logger
	runs  runQueues
}

// New returns a Service over d and starts its record batcher; Close stops
// it.
func New(d Deps) *Service {
	rec := newRecorder(d.Control, d.Logs, d.Retention, d.Log, defaultLimits, newRecorderMetrics(d.Registry))
	return &Service{d: d, store: d.Control.Store(), log: d.Log, rec: rec}
}
