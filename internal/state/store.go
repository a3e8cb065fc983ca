// Package state owns the control plane's replicated state: functions, API
// keys, users and their sessions, and invocation records. The FSM is its only writer; everyone else
// reads. It is an in-memory store whose size is bounded by retention and
// which is persisted through Raft snapshots (see docs/architecture.md).
//
// Objects handed out by the store are copies or must be treated as
// immutable: callers never mutate what they read, and writers replace
// objects instead of changing them in place.
package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/internal/model"
)

// Errors an apply returns that callers tell apart with errors.Is; each
// has a code in the fsm package that carries it from a leader to the
// follower that forwarded the command.
var (
	// ErrNotFound: an object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change contradicts what is stored (a name taken, a
	// limit another change already used up).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the change is malformed or out of bounds whatever is
	// stored.
	ErrInvalid = errors.New("invalid")
)

// Errorf returns an error that reads as the formatted message and is kind
// (one of the errors above, or any sentinel) for errors.Is: the message
// says what went wrong in words a person reads, the kind says what
// callers do about it (the gateway's status).
func Errorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Store is the state store. The zero value is not usable; call New.
// All methods are safe for concurrent use.
type Store struct {
	mu        sync.RWMutex
	functions map[string]*model.Function
	names     nameOrder // of functions
	keys      map[string]*model.Key
	servers   map[string]*model.ServerInfo
	records   recordIndex
	metrics   metricHistory

	queue         map[string]*model.QueueItem
	queueSeq      uint64
	deadLetters   map[string]*model.DeadLetter
	dlOrder       []string // dead-letter IDs, oldest first
	schedules     map[string]*model.Schedule
	schedLog      changeLog               // the schedules' changes, for the scheduler (ScheduleChanges)
	topics        map[string]*model.Topic // by qualified name
	settings      map[string]string
	subscriptions map[string]*model.Subscription
	audit         []model.AuditEntry
	namespaces    map[string]*model.Namespace
	users         map[string]*model.User
	sessions      map[string]*model.Session
	sources       map[string]*model.Source
	urls          map[string]*model.FunctionURL // by the function's qualified name
	// testEvents are the saved test events by the function's qualified
	// name, then by name.
	testEvents map[string]map[string]*model.TestEvent
	// prices are the price tables: the cluster's under "", namespaces'
	// overrides under their names.
	prices map[string]model.PriceTable
	// budgets are the namespaces' budgets by namespace.
	budgets map[string]*model.Budget
	// builds are the dependency builds by namespace, oldest first;
	// depLayers the layers they made, by cache key (builds.go).
	builds    map[string][]*model.Build
	depLayers map[string]*model.DepLayer
	// layers are the published layers by qualified name, versions
	// ascending; layerSeq the last version published under each name
	// (layers.go).
	layers   map[string][]*model.Layer
	layerSeq map[string]int64
	// versions are the functions' published versions by the function's
	// qualified name, ascending; versionSeq the last number published
	// for each; aliases the aliases by qualified name then alias name
	// (versions.go).
	versions   map[string][]*model.Function
	versionSeq map[string]int64
	aliases    map[string]map[string]*model.Alias

	// view is what every request reads without mu, so that the invoke
	// path never waits behind a long write (a batch of records and its
	// retention). Writers replace it, under mu, after every change to
	// what it holds (publishLocked).
	view atomic.Pointer[view]
}

// view holds what the invoke path reads without the lock: the
// functions, keys, namespaces and function URLs, the functions'
// versions and aliases, each namespace's reserved concurrency summed
// over its functions, the blocked namespaces and the provisioned
// functions. A published view never changes; writers publish a new one
// under mu, copying only what they changed (the big maps are cowMaps, of
// which a change copies one shard).
type view struct {
	functions  cowMap[*model.Function]
	keys       map[string]*model.Key
	namespaces map[string]*model.Namespace
	urls       cowMap[*model.FunctionURL]
	reserved   map[string]int
	// blocked maps a namespace whose budget's hard limit was reached to
	// the month (YYYY-MM) it was reached in.
	blocked map[string]string
	// provisioned lists the functions with provisioned instances, by
	// qualified name, for the metering (provisioned.go).
	provisioned []model.ProvisionedSample
	// versions and aliases are by the function's qualified name
	// (versions.go).
	versions cowMap[[]*model.Function]
	aliases  cowMap[map[string]*model.Alias]
}

// publishLocked builds the whole view again from the store (a restore,
// a new store). Needs mu held for writing. Writers that change a part
// publish that part alone (editLocked and the *ChangedLocked methods).
func (s *Store) publishLocked() {
	v := &view{functions: newCowMap(s.functions), keys: maps.Clone(s.keys),
		namespaces: maps.Clone(s.namespaces), urls: newCowMap(s.urls), reserved: map[string]int{},
		versions: newCowMap(s.versions), aliases: newCowMap(s.aliases)}
	for _, f := range s.functions {
		if f.ReservedConcurrency != nil {
			v.reserved[f.Namespace] += *f.ReservedConcurrency
		}
	}
	v.provisioned = s.provisionedLocked()
	v.blocked = s.blockedLocked()
	s.view.Store(v)
}

// editLocked publishes the current view changed by edit. Needs mu held
// for writing.
func (s *Store) editLocked(edit func(v *view)) {
	v := *s.view.Load()
	edit(&v)
	s.view.Store(&v)
}

// functionChangedLocked publishes function qn as s.functions has it now
// (absent: removed), given what it was before (nil: it did not exist):
// the function, its namespace's reserved concurrency and, when either
// has provisioned instances, the provisioned functions. Needs mu held
// for writing.
func (s *Store) functionChangedLocked(qn string, old *model.Function) {
	f := s.functions[qn]
	if (old == nil) != (f == nil) {
		// After the view that has it is published (nameOrder).
		defer s.names.changed(qn, f != nil)
	}
	s.editLocked(func(v *view) {
		if f == nil {
			v.functions = v.functions.without(qn)
		} else {
			v.functions = v.functions.with(qn, f)
		}
		reserved := func(f *model.Function) int {
			if f == nil || f.ReservedConcurrency == nil {
				return 0
			}
			return *f.ReservedConcurrency
		}
		if was, now := reserved(old), reserved(f); was != now {
			v.reserved = maps.Clone(v.reserved)
			if old != nil {
				v.reserved[old.Namespace] -= was
			}
			if f != nil {
				v.reserved[f.Namespace] += now
			}
		}
		if old != nil && old.Provisioned > 0 || f != nil && f.Provisioned > 0 {
			v.provisioned = s.provisionedLocked()
		}
	})
}

// provisionedLocked lists the functions with provisioned instances, by
// qualified name. Needs mu.
func (s *Store) provisionedLocked() []model.ProvisionedSample {
	var out []model.ProvisionedSample
	for _, f := range s.functions {
		if f.Provisioned > 0 {
			out = append(out, model.ProvisionedSample{Namespace: f.Namespace, Function: f.Name, Instances: f.Provisioned, MemoryMB: f.MemoryMB})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return model.QualifiedName(out[i].Namespace, out[i].Function) < model.QualifiedName(out[j].Namespace, out[j].Function)
	})
	return out
}

// blockedLocked maps the namespaces whose budget's hard limit was
// reached to the month it was. Needs mu.
func (s *Store) blockedLocked() map[string]string {
	var out map[string]string
	for ns, b := range s.budgets {
		if b.HardLimit && b.Exceeded {
			if out == nil {
				out = map[string]string{}
			}
			out[ns] = b.Month
		}
	}
	return out
}

// New returns an empty store.
func New() *Store {
	s := &Store{
		functions: map[string]*model.Function{},
		keys:      map[string]*model.Key{},
		servers:   map[string]*model.ServerInfo{},
		records:   newRecordIndex(),
		metrics:   newMetricHistory(),

		queue:         map[string]*model.QueueItem{},
		deadLetters:   map[string]*model.DeadLetter{},
		schedules:     map[string]*model.Schedule{},
		topics:        map[string]*model.Topic{},
		settings:      map[string]string{},
		subscriptions: map[string]*model.Subscription{},
		namespaces:    map[string]*model.Namespace{},
		users:         map[string]*model.User{},
		sessions:      map[string]*model.Session{},
		sources:       map[string]*model.Source{},
		urls:          map[string]*model.FunctionURL{},
		budgets:       map[string]*model.Budget{},
		builds:        map[string][]*model.Build{},
		depLayers:     map[string]*model.DepLayer{},
		layers:        map[string][]*model.Layer{},
		layerSeq:      map[string]int64{},
		versions:      map[string][]*model.Function{},
		versionSeq:    map[string]int64{},
		aliases:       map[string]map[string]*model.Alias{},
		testEvents:    map[string]map[string]*model.TestEvent{},
		prices:        map[string]model.PriceTable{},
	}
	s.publishLocked()
	return s
}

// Snapshot is a point-in-time copy of the whole store, as serialised.
type Snapshot struct {
	Functions []*model.Function   `json:"functions"`
	Keys      []*model.Key        `json:"keys"`
	Servers   []*model.ServerInfo `json:"servers"`

	Queue         []*model.QueueItem    `json:"queue"`
	QueueSeq      uint64                `json:"queue_seq"`
	DeadLetters   []*model.DeadLetter   `json:"dead_letters"` // oldest first
	Schedules     []*model.Schedule     `json:"schedules"`
	Settings      map[string]string     `json:"settings"`
	Subscriptions []*model.Subscription `json:"subscriptions"`
	Audit         []model.AuditEntry    `json:"audit"`
	Namespaces    []*model.Namespace    `json:"namespaces"`
	Records       []model.Invocation    `json:"records"`
	// RecordsSweptMinute and RecordsSweptRetention are the batch minute
	// and the retention of the last retention sweep over every function
	// (records.go, prune).
	RecordsSweptMinute    int64                `json:"records_swept_minute,omitempty"`
	RecordsSweptRetention *model.Retention     `json:"records_swept_retention,omitempty"`
	Users                 []*model.User        `json:"users"`
	Sessions              []*model.Session     `json:"sessions"`
	Sources               []*model.Source      `json:"sources,omitempty"`
	Topics                []*model.Topic       `json:"topics,omitempty"`
	FunctionURLs          []*model.FunctionURL `json:"function_urls,omitempty"`
	TestEvents            []*model.TestEvent   `json:"test_events,omitempty"`
	// Metrics is the metric history (see metrics.go), MetricsNow the
	// latest batch time it has seen, MetricsKeep its tiers' retentions
	// (minutes, hours, days; absent: the defaults).
	Metrics     []model.MetricHistory `json:"metrics,omitempty"`
	MetricsNow  time.Time             `json:"metrics_now,omitzero"`
	MetricsKeep []time.Duration       `json:"metrics_keep,omitempty"`
	// MetricsProvisioned are the provisioned functions as of the latest
	// batch (MetricsNow), whose instances are metered until the next.
	MetricsProvisioned   []model.ProvisionedSample `json:"metrics_provisioned,omitempty"`
	MetricsProvisionedAt time.Time                 `json:"metrics_provisioned_at,omitzero"`
	// Prices are the price tables set: the cluster's under "", the
	// namespaces' overrides under their names.
	Prices map[string]model.PriceTable `json:"prices,omitempty"`
	// Budgets are the namespaces' budgets, sorted by namespace.
	Budgets []*model.Budget `json:"budgets,omitempty"`
	// Builds are the dependency builds kept, by namespace then oldest
	// first; DepLayers the layers they made (by cache key).
	Builds    []*model.Build    `json:"builds,omitempty"`
	DepLayers []*model.DepLayer `json:"dep_layers,omitempty"`
	// Layers are the published layer versions; LayerSeq the last version
	// number of each name (by qualified name), which outlives removals.
	Layers   []*model.Layer   `json:"layers,omitempty"`
	LayerSeq map[string]int64 `json:"layer_seq,omitempty"`
	// Versions are the functions' published versions, by qualified name
	// then number; VersionSeq the last number published for each
	// function (by qualified name); Aliases the aliases, by function then
	// name.
	Versions   []*model.Function `json:"versions,omitempty"`
	VersionSeq map[string]int64  `json:"version_seq,omitempty"`
	Aliases    []*model.Alias    `json:"aliases,omitempty"`

	// unordered says the sections are still in the store's map order (see
	// CaptureUnordered), and histories the metric history still to be
	// converted into Metrics; order does both.
	unordered bool
	histories capturedHistories
	// storedRecords are the records of a capture as the store keeps them
	// (compact, recordpack.go; shared with the store, which copies one
	// before it changes it), in place of Records: WriteTo writes each as
	// its record (record), one at a time, so that a snapshot being
	// written holds a pointer a record and not a 304-byte struct and its
	// log tail; Capture makes Records of them.
	storedRecords []*storedRecord
}

// Capture copies the store's content at this instant, every section in
// its order (see order).
func (s *Store) Capture() *Snapshot {
	snap := s.CaptureUnordered()
	snap.order()
	if len(snap.storedRecords) > 0 {
		snap.Records = make([]model.Invocation, len(snap.storedRecords))
		for i := range snap.storedRecords {
			snap.Records[i] = snap.storedRecords[i].record()
		}
	}
	snap.storedRecords = nil
	return snap
}

// CaptureUnordered copies the store's content at this instant and leaves
// the sorting of its sections, and the conversion of the metric history,
// to WriteTo. The FSM calls it between two Applies, so the copy matches
// exactly one log index, and no Apply runs until it returns: the sorts
// and the conversion (five sixths of a capture of 93,601 functions'
// state, BenchmarkCapture) run in the snapshot's Persist instead, beside
// the Applies.
func (s *Store) CaptureUnordered() *Snapshot {
	s.mu.RLock()
	snap := &Snapshot{RecordsSweptMinute: s.records.sweptMinute, storedRecords: s.records.all()}
	if ret := s.records.sweptRet; ret != (model.Retention{}) {
		snap.RecordsSweptRetention = &ret
	}
	for _, qn := range s.names.current(&s.view) { // in order
		if f := s.functions[qn]; f != nil {
			snap.Functions = append(snap.Functions, f)
		}
	}
	for _, k := range s.keys {
		snap.Keys = append(snap.Keys, k)
	}
	for _, v := range s.servers {
		snap.Servers = append(snap.Servers, v)
	}
	for _, q := range s.queue {
		snap.Queue = append(snap.Queue, q)
	}
	snap.QueueSeq = s.queueSeq
	for _, v := range s.subscriptions {
		snap.Subscriptions = append(snap.Subscriptions, v)
	}
	snap.Audit = append([]model.AuditEntry(nil), s.audit...)
	snap.Settings = make(map[string]string, len(s.settings))
	for k, v := range s.settings {
		snap.Settings[k] = v
	}
	for _, id := range s.dlOrder {
		snap.DeadLetters = append(snap.DeadLetters, s.deadLetters[id])
	}
	for _, sc := range s.schedules {
		snap.Schedules = append(snap.Schedules, sc)
	}
	for _, t := range s.topics {
		snap.Topics = append(snap.Topics, t)
	}
	for _, ns := range s.namespaces {
		snap.Namespaces = append(snap.Namespaces, ns)
	}
	for _, u := range s.users {
		snap.Users = append(snap.Users, u)
	}
	for _, v := range s.sessions {
		snap.Sessions = append(snap.Sessions, v)
	}
	for _, v := range s.sources {
		snap.Sources = append(snap.Sources, v)
	}
	for _, u := range s.urls {
		snap.FunctionURLs = append(snap.FunctionURLs, u)
	}
	snap.TestEvents = s.allTestEventsLocked()
	if len(s.prices) > 0 {
		snap.Prices = maps.Clone(s.prices)
	}
	snap.Budgets = s.allBudgetsLocked()
	snap.Builds = s.allBuildsLocked()
	snap.DepLayers = s.allDepLayersLocked()
	snap.Layers, snap.LayerSeq = s.allLayersLocked()
	snap.Versions, snap.VersionSeq, snap.Aliases = s.allVersionsLocked()
	snap.histories = s.metrics.historiesLocked()
	if s.metrics.now != 0 {
		snap.MetricsNow = time.Unix(s.metrics.now*60, 0).UTC()
	}
	if s.metrics.keep != defaultKeep {
		snap.MetricsKeep = s.metricsKeepLocked()
	}
	snap.MetricsProvisioned = slices.Clone(s.metrics.provisioned)
	if s.metrics.provisionedAt != 0 {
		snap.MetricsProvisionedAt = time.Unix(0, s.metrics.provisionedAt).UTC()
	}
	s.mu.RUnlock()
	snap.unordered = true
	return snap
}

// order sorts the sections of a snapshot CaptureUnordered made, once:
// records oldest first, the metric history and what is named by its
// qualified name, the rest by ID or name.
func (snap *Snapshot) order() {
	if !snap.unordered {
		return
	}
	snap.unordered = false
	snap.Metrics = snap.histories.snapshot()
	snap.histories = capturedHistories{}
	// Records oldest first (compareOldestFirst), the same order on every
	// server that holds the same records: restored in it, each is
	// appended at the end of its function's list and of its namespace's
	// timeList, which is then in start order.
	slices.SortFunc(snap.storedRecords, compareOldestFirst)
	sortMetricHistory(snap.Metrics)
	sort.Slice(snap.Namespaces, func(i, j int) bool { return snap.Namespaces[i].Name < snap.Namespaces[j].Name })
	sort.Slice(snap.Keys, func(i, j int) bool { return snap.Keys[i].ID < snap.Keys[j].ID })
	sort.Slice(snap.Servers, func(i, j int) bool { return snap.Servers[i].ID < snap.Servers[j].ID })
	sort.Slice(snap.Queue, func(i, j int) bool { return snap.Queue[i].Seq < snap.Queue[j].Seq })
	sort.Slice(snap.Schedules, func(i, j int) bool {
		a, b := snap.Schedules[i], snap.Schedules[j]
		return model.QualifiedName(a.Namespace, a.Name) < model.QualifiedName(b.Namespace, b.Name)
	})
	sort.Slice(snap.Topics, func(i, j int) bool {
		a, b := snap.Topics[i], snap.Topics[j]
		return model.QualifiedName(a.Namespace, a.Name) < model.QualifiedName(b.Namespace, b.Name)
	})
	sort.Slice(snap.Users, func(i, j int) bool { return snap.Users[i].Name < snap.Users[j].Name })
	sort.Slice(snap.Sessions, func(i, j int) bool { return snap.Sessions[i].ID < snap.Sessions[j].ID })
	sort.Slice(snap.Sources, func(i, j int) bool {
		a, b := snap.Sources[i], snap.Sources[j]
		return model.QualifiedName(a.Namespace, a.Name) < model.QualifiedName(b.Namespace, b.Name)
	})
	sort.Slice(snap.FunctionURLs, func(i, j int) bool {
		a, b := snap.FunctionURLs[i], snap.FunctionURLs[j]
		return model.QualifiedName(a.Namespace, a.Function) < model.QualifiedName(b.Namespace, b.Function)
	})
}

// SnapshotVersion is the version of the snapshots WriteTo writes.
//
//   - Version 1: the Snapshot's JSON alone, written before snapshots had
//     a header.
//   - Version 2: the header line {"nimbus_snapshot":2}, then the same JSON
//     as version 1.
//
// The types inside are model's, whose JSON names never change (see
// internal/model): adding a field needs no new version. A change that
// older code would misread (a section encoded another way, a field whose
// meaning changes) takes the next version, and Restore keeps decoding
// every earlier one.
const SnapshotVersion = 2

// snapshotHeader is the start of a snapshot's header line; a snapshot
// without it is version 1 (whose JSON starts with {"functions":).
const snapshotHeader = `{"nimbus_snapshot":`

// WriteTo writes the snapshot to w: its header line, then its JSON.
func (snap *Snapshot) WriteTo(w io.Writer) (int64, error) {
	snap.order()
	cw := &countingWriter{w: w}
	if _, err := fmt.Fprintf(cw, "%s%d}\n", snapshotHeader, SnapshotVersion); err != nil {
		return cw.n, err
	}
	err := encodeStreamed(cw, snap)
	return cw.n, err
}

// ReadSnapshot decodes a snapshot of any version Restore knows.
func ReadSnapshot(r io.Reader) (*Snapshot, error) {
	return readSnapshot(r, nil)
}

// readSnapshot is ReadSnapshot; with records not nil, the records are
// passed to it as decodeSnapshot passes them, not kept in the Snapshot.
func readSnapshot(r io.Reader, records func([]model.Invocation)) (*Snapshot, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	version := 1
	if head, _ := br.Peek(len(snapshotHeader)); string(head) == snapshotHeader {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("snapshot header: %w", err)
		}
		var h struct {
			Version int `json:"nimbus_snapshot"`
		}
		if err := json.Unmarshal(line, &h); err != nil {
			return nil, fmt.Errorf("snapshot header %q: %w", line, err)
		}
		version = h.Version
	}
	switch version {
	case 1, 2:
		var snap Snapshot
		if err := decodeSnapshot(br, &snap, records); err != nil {
			return nil, fmt.Errorf("snapshot version %d: %w", version, err)
		}
		return &snap, nil
	default:
		return nil, fmt.Errorf("snapshot version %d is unknown to this release (it reads 1 to %d): written by a newer one?", version, SnapshotVersion)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the store's content with a snapshot read from r, of
// any version up to SnapshotVersion.
func (s *Store) Restore(r io.Reader) error {
	// The records go into the index as their runs are decoded: a million
	// of them decoded first would hold about 0.6 GB beside the index.
	records := newRecordIndex()
	snap, err := readSnapshot(r, func(run []model.Invocation) {
		for _, rec := range run {
			records.add(rec)
		}
	})
	if err != nil {
		return err
	}
	functions := make(map[string]*model.Function, len(snap.Functions))
	for _, f := range snap.Functions {
		f.Namespace = model.NamespaceOf(f.Namespace)
		functions[f.QualifiedName()] = f
	}
	keys := make(map[string]*model.Key, len(snap.Keys))
	for _, k := range snap.Keys {
		keys[k.ID] = k
	}
	servers := make(map[string]*model.ServerInfo, len(snap.Servers))
	for _, v := range snap.Servers {
		servers[v.ID] = v
	}
	records.sweptMinute = snap.RecordsSweptMinute
	if snap.RecordsSweptRetention != nil {
		records.sweptRet = *snap.RecordsSweptRetention
	}
	metrics := restoreMetrics(snap.Metrics, snap.MetricsNow, snap.MetricsKeep)
	metrics.provisioned = snap.MetricsProvisioned
	if !snap.MetricsProvisionedAt.IsZero() {
		metrics.provisionedAt = snap.MetricsProvisionedAt.UnixNano()
	}
	s.mu.Lock()
	queue := make(map[string]*model.QueueItem, len(snap.Queue))
	for _, q := range snap.Queue {
		queue[q.RequestID] = q
	}
	dls := make(map[string]*model.DeadLetter, len(snap.DeadLetters))
	var order []string
	for _, d := range snap.DeadLetters {
		dls[d.RequestID] = d
		order = append(order, d.RequestID)
	}
	schedules := make(map[string]*model.Schedule, len(snap.Schedules))
	for _, sc := range snap.Schedules {
		sc.Namespace = model.NamespaceOf(sc.Namespace)
		schedules[model.QualifiedName(sc.Namespace, sc.Name)] = sc
	}
	topics := make(map[string]*model.Topic, len(snap.Topics))
	for _, t := range snap.Topics {
		t.Namespace = model.NamespaceOf(t.Namespace)
		topics[model.QualifiedName(t.Namespace, t.Name)] = t
	}
	records.observe, records.outcome = s.records.observe, s.records.outcome
	s.functions, s.keys, s.servers, s.records, s.metrics = functions, keys, servers, records, metrics
	s.queue, s.queueSeq, s.deadLetters, s.dlOrder, s.schedules = queue, snap.QueueSeq, dls, order, schedules
	s.schedLog.forget() // every schedule may have changed
	s.topics = topics
	s.subscriptions = map[string]*model.Subscription{}
	for _, v := range snap.Subscriptions {
		s.subscriptions[v.ID] = v
	}
	s.audit = snap.Audit
	s.namespaces = map[string]*model.Namespace{}
	for _, ns := range snap.Namespaces {
		s.namespaces[ns.Name] = ns
	}
	s.users = make(map[string]*model.User, len(snap.Users))
	for _, u := range snap.Users {
		s.users[u.Name] = u
	}
	s.sessions = make(map[string]*model.Session, len(snap.Sessions))
	for _, v := range snap.Sessions {
		s.sessions[v.ID] = v
	}
	s.sources = make(map[string]*model.Source, len(snap.Sources))
	for _, v := range snap.Sources {
		v.Namespace = model.NamespaceOf(v.Namespace)
		s.sources[model.QualifiedName(v.Namespace, v.Name)] = v
	}
	s.urls = make(map[string]*model.FunctionURL, len(snap.FunctionURLs))
	for _, u := range snap.FunctionURLs {
		u.Namespace = model.NamespaceOf(u.Namespace)
		s.urls[model.QualifiedName(u.Namespace, u.Function)] = u
	}
	s.testEvents = map[string]map[string]*model.TestEvent{}
	for _, e := range snap.TestEvents {
		e.Namespace = model.NamespaceOf(e.Namespace)
		qn := model.QualifiedName(e.Namespace, e.Function)
		if s.testEvents[qn] == nil {
			s.testEvents[qn] = map[string]*model.TestEvent{}
		}
		s.testEvents[qn][e.Name] = e
	}
	s.settings = snap.Settings
	if s.settings == nil {
		s.settings = map[string]string{}
	}
	s.prices = maps.Clone(snap.Prices)
	if s.prices == nil {
		s.prices = map[string]model.PriceTable{}
	}
	s.budgets = map[string]*model.Budget{}
	for _, b := range snap.Budgets {
		s.budgets[b.Namespace] = b
	}
	s.restoreBuildsLocked(snap)
	s.restoreLayersLocked(snap)
	s.restoreVersionsLocked(snap)
	s.publishLocked()
	s.names.reset() // after the view it is built from again (nameOrder)
	s.mu.Unlock()
	return nil
}
