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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"sync/atomic"

	"nimbus/pkg/client"
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
	functions map[string]*client.Function
	keys      map[string]*Key
	servers   map[string]*ServerInfo
	records   recordIndex

	queue         map[string]*QueueItem
	queueSeq      uint64
	deadLetters   map[string]*client.DeadLetter
	dlOrder       []string // dead-letter IDs, oldest first
	schedules     map[string]*client.Schedule
	settings      map[string]string
	subscriptions map[string]*client.Subscription
	audit         []client.AuditEntry
	namespaces    map[string]*client.Namespace
	users         map[string]*User
	sessions      map[string]*Session

	// view is what every request reads without mu, so that the invoke
	// path never waits behind a long write (a batch of records and its
	// retention). Writers replace it, under mu, after every change to
	// what it holds (publishLocked).
	view atomic.Pointer[view]
}

// view holds copies of the functions, keys and namespaces, and each
// namespace's reserved concurrency summed over its functions.
type view struct {
	functions  map[string]*client.Function
	keys       map[string]*Key
	namespaces map[string]*client.Namespace
	reserved   map[string]int
}

// publishLocked refreshes the lock-free view. Needs mu held for writing.
func (s *Store) publishLocked() {
	v := &view{functions: maps.Clone(s.functions), keys: maps.Clone(s.keys),
		namespaces: maps.Clone(s.namespaces), reserved: map[string]int{}}
	for _, f := range s.functions {
		if f.ReservedConcurrency != nil {
			v.reserved[f.Namespace] += *f.ReservedConcurrency
		}
	}
	s.view.Store(v)
}

// New returns an empty store.
func New() *Store {
	s := &Store{
		functions: map[string]*client.Function{},
		keys:      map[string]*Key{},
		servers:   map[string]*ServerInfo{},
		records:   newRecordIndex(),

		queue:         map[string]*QueueItem{},
		deadLetters:   map[string]*client.DeadLetter{},
		schedules:     map[string]*client.Schedule{},
		settings:      map[string]string{},
		subscriptions: map[string]*client.Subscription{},
		namespaces:    map[string]*client.Namespace{},
		users:         map[string]*User{},
		sessions:      map[string]*Session{},
	}
	s.publishLocked()
	return s
}

// Snapshot is a point-in-time copy of the whole store, as serialised.
type Snapshot struct {
	Functions []*client.Function `json:"functions"`
	Keys      []*Key             `json:"keys"`
	Servers   []*ServerInfo      `json:"servers"`

	Queue         []*QueueItem           `json:"queue"`
	QueueSeq      uint64                 `json:"queue_seq"`
	DeadLetters   []*client.DeadLetter   `json:"dead_letters"` // oldest first
	Schedules     []*client.Schedule     `json:"schedules"`
	Settings      map[string]string      `json:"settings"`
	Subscriptions []*client.Subscription `json:"subscriptions"`
	Audit         []client.AuditEntry    `json:"audit"`
	Namespaces    []*client.Namespace    `json:"namespaces"`
	Records       []client.Invocation    `json:"records"`
	Users         []*User                `json:"users"`
	Sessions      []*Session             `json:"sessions"`
}

// Capture copies the store's content at this instant. The FSM calls it
// between two Applies, so the copy matches exactly one log index.
func (s *Store) Capture() *Snapshot {
	s.mu.RLock()
	snap := &Snapshot{Records: s.records.all()}
	for _, f := range s.functions {
		snap.Functions = append(snap.Functions, f)
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
	snap.Audit = append([]client.AuditEntry(nil), s.audit...)
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
	for _, ns := range s.namespaces {
		snap.Namespaces = append(snap.Namespaces, ns)
	}
	for _, u := range s.users {
		snap.Users = append(snap.Users, u)
	}
	for _, v := range s.sessions {
		snap.Sessions = append(snap.Sessions, v)
	}
	s.mu.RUnlock()
	sort.Slice(snap.Namespaces, func(i, j int) bool { return snap.Namespaces[i].Name < snap.Namespaces[j].Name })
	sort.Slice(snap.Functions, func(i, j int) bool {
		return snap.Functions[i].QualifiedName() < snap.Functions[j].QualifiedName()
	})
	sort.Slice(snap.Keys, func(i, j int) bool { return snap.Keys[i].ID < snap.Keys[j].ID })
	sort.Slice(snap.Servers, func(i, j int) bool { return snap.Servers[i].ID < snap.Servers[j].ID })
	sort.Slice(snap.Queue, func(i, j int) bool { return snap.Queue[i].Seq < snap.Queue[j].Seq })
	sort.Slice(snap.Schedules, func(i, j int) bool {
		a, b := snap.Schedules[i], snap.Schedules[j]
		return client.QualifiedName(a.Namespace, a.Name) < client.QualifiedName(b.Namespace, b.Name)
	})
	sort.Slice(snap.Users, func(i, j int) bool { return snap.Users[i].Name < snap.Users[j].Name })
	sort.Slice(snap.Sessions, func(i, j int) bool { return snap.Sessions[i].ID < snap.Sessions[j].ID })
	return snap
}

// WriteTo writes the snapshot to w as JSON.
func (snap *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := json.NewEncoder(cw).Encode(snap)
	return cw.n, err
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

// Restore replaces the store's content with a snapshot read from r.
func (s *Store) Restore(r io.Reader) error {
	var snap Snapshot
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return err
	}
	functions := make(map[string]*client.Function, len(snap.Functions))
	for _, f := range snap.Functions {
		f.Namespace = client.NamespaceOf(f.Namespace)
		functions[f.QualifiedName()] = f
	}
	keys := make(map[string]*Key, len(snap.Keys))
	for _, k := range snap.Keys {
		keys[k.ID] = k
	}
	servers := make(map[string]*ServerInfo, len(snap.Servers))
	for _, v := range snap.Servers {
		servers[v.ID] = v
	}
	records := newRecordIndex()
	for _, r := range snap.Records {
		records.add(r)
	}
	s.mu.Lock()
	queue := make(map[string]*QueueItem, len(snap.Queue))
	for _, q := range snap.Queue {
		queue[q.RequestID] = q
	}
	dls := make(map[string]*client.DeadLetter, len(snap.DeadLetters))
	var order []string
	for _, d := range snap.DeadLetters {
		dls[d.RequestID] = d
		order = append(order, d.RequestID)
	}
	schedules := make(map[string]*client.Schedule, len(snap.Schedules))
	for _, sc := range snap.Schedules {
		sc.Namespace = client.NamespaceOf(sc.Namespace)
		schedules[client.QualifiedName(sc.Namespace, sc.Name)] = sc
	}
	records.observe, records.outcome = s.records.observe, s.records.outcome
	s.functions, s.keys, s.servers, s.records = functions, keys, servers, records
	s.queue, s.queueSeq, s.deadLetters, s.dlOrder, s.schedules = queue, snap.QueueSeq, dls, order, schedules
	s.subscriptions = map[string]*client.Subscription{}
	for _, v := range snap.Subscriptions {
		s.subscriptions[v.ID] = v
	}
	s.audit = snap.Audit
	s.namespaces = map[string]*client.Namespace{}
	for _, ns := range snap.Namespaces {
		s.namespaces[ns.Name] = ns
	}
	s.users = make(map[string]*User, len(snap.Users))
	for _, u := range snap.Users {
		s.users[u.Name] = u
	}
	s.sessions = make(map[string]*Session, len(snap.Sessions))
	for _, v := range snap.Sessions {
		s.sessions[v.ID] = v
	}
	s.settings = snap.Settings
	if s.settings == nil {
		s.settings = map[string]string{}
	}
	s.publishLocked()
	s.mu.Unlock()
	return nil
}
