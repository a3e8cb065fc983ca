package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/worker"
)

const (
	batchMax = 512
	// batchInterval is how long records gather before a commit. Each
	// commit is a Raft append with its fsync, and the node's fsyncs show
	// in the warm tail: at 100 ms rather than 20 ms, 3,000 sequential warm
	// invokes had a p99 of 265-292 us rather than 408-757 us
	// (bench/results.md). Records and short logs appear that much later.
	batchInterval = 100 * time.Millisecond
	retentionTick = time.Minute
	// commitTimeout bounds one commit (a follower's forward included).
	commitTimeout = 10 * time.Second
)

// recorder batches invocation records into RecordInvocations commands
// (many records per Raft entry) and stores full logs locally. It runs off
// the invoke path: add never blocks on Raft. What it cannot commit it
// holds and retries until committed (held.go): every record added is
// committed in the end, or dropped with an ERROR naming it.
type recorder struct {
	cp        Control
	logs      *logstore.Store
	retention model.Retention
	log       *slog.Logger
	limits    limits
	metrics   recorderMetrics

	mu sync.Mutex
	// throttles count the invocations refused with 429 by function and
	// minute, until a commit carries them (any RecordInvocations this
	// recorder commits).
	throttles map[model.ThrottleCount]int64 // keyed with Count 0
	records   []model.Invocation
	inflight  []model.Invocation // the batch being committed
	entries   []model.LogEntry
	storing   []model.LogEntry // the batch of logs being stored
	audit     []model.AuditEntry
	// waiting are the channels to close once the record of an ID is
	// committed or held (addWaiting): its caller then knows a restart
	// does not lose it.
	waiting map[string][]chan struct{}
	wake    chan struct{}
	// urgent cuts a gathering interval short: a caller waits.
	urgent chan struct{}
	stop   chan struct{}
	done   chan struct{}

	// held are the records (by ID, the last version) and audit entries
	// whose commit failed, also in the log store's pending buckets until
	// committed; heldBytes is the records' heldSize. Changed by run's
	// goroutine only, under mu (pending reads them).
	held      map[string]model.Invocation
	heldBytes int
	heldAudit []logstore.PendingAudit
	// The rest is owned by run's goroutine. nextSeq numbers held audit
	// entries; unsaved says some held ones are not in the log store;
	// backoff is the last wait between retries, retryAt the next retry.
	nextSeq uint64
	unsaved bool
	backoff time.Duration
	retryAt time.Time

	// expired are the logs whose records retention removed, deleted with
	// the next batch of logs (one log-store transaction for both). Owned
	// by run.
	expired []string
}

// newRecorder starts a recorder, which first takes over what an earlier
// one over the same log store held.
func newRecorder(cp Control, logs *logstore.Store, ret model.Retention, log *slog.Logger, lim limits, m recorderMetrics) *recorder {
	r := &recorder{cp: cp, logs: logs, retention: ret, log: log, limits: lim, metrics: m,
		held: map[string]model.Invocation{},
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	r.load()
	go r.run()
	return r
}

// addAudit queues an audit entry for the next batch.
func (r *recorder) addAudit(e model.AuditEntry) {
	r.mu.Lock()
	r.audit = append(r.audit, e)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// add queues a record and a log (either may be nil).
func (r *recorder) add(rec *model.Invocation, entry *model.LogEntry) {
	r.mu.Lock()
	if rec != nil {
		r.records = append(r.records, *rec)
	}
	if entry != nil {
		r.entries = append(r.entries, *entry)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// addThrottle counts a refused invocation of function fn of namespace ns
// in the current minute, for the next batch.
func (r *recorder) addThrottle(ns, fn string, now time.Time) {
	k := model.ThrottleCount{Namespace: model.NamespaceOf(ns), Function: fn, Minute: now.UTC().Truncate(time.Minute)}
	r.mu.Lock()
	if r.throttles == nil {
		r.throttles = map[model.ThrottleCount]int64{}
	}
	r.throttles[k]++
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// takeThrottles takes the throttle counts gathered, for a commit.
func (r *recorder) takeThrottles() []model.ThrottleCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.throttles) == 0 {
		return nil
	}
	out := make([]model.ThrottleCount, 0, len(r.throttles))
	for k, n := range r.throttles {
		k.Count = n
		out = append(out, k)
	}
	clear(r.throttles)
	return out
}

// putBackThrottles returns the counts of a commit that failed, to go
// with the next one. A commit whose outcome was unknown (a timeout after
// the leader took it) may so count them twice: unlike a record, a count
// has no ID to replace by. They are kept in memory only: a restart loses
// them.
func (r *recorder) putBackThrottles(ts []model.ThrottleCount) {
	if len(ts) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.throttles == nil {
		r.throttles = map[model.ThrottleCount]int64{}
	}
	for _, t := range ts {
		n := t.Count
		t.Count = 0
		r.throttles[t] += n
	}
}

func (r *recorder) hasThrottles() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.throttles) > 0
}

// addWaiting queues a record and its log (which may be nil) and returns
// a channel closed once the record is committed, or held for retry in
// the log store: once a restart would not lose it. The batch it is in
// does not wait out the gathering interval.
func (r *recorder) addWaiting(rec model.Invocation, entry *model.LogEntry) <-chan struct{} {
	done := make(chan struct{})
	r.mu.Lock()
	if r.waiting == nil {
		r.waiting = map[string][]chan struct{}{}
	}
	r.waiting[rec.ID] = append(r.waiting[rec.ID], done)
	r.mu.Unlock()
	r.add(&rec, entry)
	select {
	case r.urgent <- struct{}{}:
	default:
	}
	return done
}

// settled closes the channels of those waiting for recs.
func (r *recorder) settled(recs []model.Invocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		for _, c := range r.waiting[rec.ID] {
			close(c)
		}
		delete(r.waiting, rec.ID)
	}
}

// anyWaiting reports whether a caller waits for a queued record.
func (r *recorder) anyWaiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting) > 0
}

// pending returns the records this server has not committed yet (held,
// queued, or in the batch being committed), the last version of each by
// ID, or nil for none.
func (r *recorder) pending() map[string]model.Invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 && len(r.inflight) == 0 && len(r.records) == 0 {
		return nil
	}
	out := make(map[string]model.Invocation, len(r.held)+len(r.inflight)+len(r.records))
	for id, rec := range r.held {
		rec.Namespace = model.NamespaceOf(rec.Namespace)
		out[id] = rec
	}
	for _, list := range [][]model.Invocation{r.inflight, r.records} {
		for _, rec := range list {
			rec.Namespace = model.NamespaceOf(rec.Namespace)
			out[rec.ID] = rec
		}
	}
	return out
}

// pendingRecord returns the record of id this server has not committed
// yet, if any: the last version, as pending would.
func (r *recorder) pendingRecord(id string) (model.Invocation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, list := range [][]model.Invocation{r.records, r.inflight} {
		for i := len(list) - 1; i >= 0; i-- {
			if list[i].ID == id {
				rec := list[i]
				rec.Namespace = model.NamespaceOf(rec.Namespace)
				return rec, true
			}
		}
	}
	rec, ok := r.held[id]
	rec.Namespace = model.NamespaceOf(rec.Namespace)
	return rec, ok
}

// pendingLogs returns the logs this server has not stored yet (queued,
// or in the batch being stored) for which keep reports true.
func (r *recorder) pendingLogs(keep func(model.LogEntry) bool) []model.LogEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []model.LogEntry
	for _, list := range [][]model.LogEntry{r.storing, r.entries} {
		for _, e := range list {
			if keep(e) {
				out = append(out, e)
			}
		}
	}
	return out
}

func (r *recorder) run() {
	defer close(r.done)
	prune := time.NewTicker(retentionTick)
	defer prune.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		retry.Stop()
		var retryC <-chan time.Time
		if r.holding() {
			retry.Reset(time.Until(r.retryAt))
			retryC = retry.C
		}
		select {
		case <-r.stop:
			r.flush(true)
			r.removeExpired()
			return
		case <-retryC:
			r.retry()
			r.removeExpired()
		case <-prune.C:
			// An empty batch still applies retention, so records age out
			// even when nothing is invoked.
			if err := r.commit(nil); err != nil {
				r.log.Warn("applying record retention", "err", err)
			}
			r.removeExpired()
		case <-r.wake:
			// Let a batch gather for a moment, unless a caller waits (or
			// comes to wait meanwhile). The wake may be stale (the record
			// that sent it went with the last batch): a waiter must not
			// wait out the interval behind it.
			if !r.anyWaiting() {
				t := time.NewTimer(r.limits.gather)
				select {
				case <-t.C:
				case <-r.urgent:
					t.Stop()
				case <-r.stop:
					t.Stop()
				}
			}
			r.flush(false)
		}
	}
}

// flush commits what has gathered: one batch, or as many full batches as
// a backlog holds. Unless all is set (at close) it does not go on to
// commit what arrived while it committed: that waits for the next
// gathering interval, so a steady load costs one Raft entry (and one log
// store transaction) per interval rather than one per commit's duration.
// Then, if a retry of what is held is due, it retries.
func (r *recorder) flush(all bool) {
	r.flushQueued(all)
	if r.retryDue() {
		r.retry()
	}
}

func (r *recorder) flushQueued(all bool) {
	for {
		r.mu.Lock()
		audit := r.audit
		r.audit = nil
		recs, entries := r.records, r.entries
		if len(recs) > batchMax {
			recs, r.records = recs[:batchMax], r.records[batchMax:]
		} else {
			r.records = nil
		}
		if len(entries) > batchMax {
			entries, r.entries = entries[:batchMax], r.entries[batchMax:]
		} else {
			r.entries = nil
		}
		// They move to storing and inflight in the same critical section
		// that takes them off the queue: the overlays (pending,
		// pendingLogs) must see each in one place or the other until the
		// store has it, never in neither.
		r.storing, r.inflight = entries, recs
		r.mu.Unlock()
		if len(audit) > 0 {
			r.commitAudit(audit)
		}
		if len(recs) == 0 && len(entries) == 0 {
			// Throttle counts alone make a batch, unless records are
			// held: a retry of those carries them.
			if !r.holding() && r.hasThrottles() {
				if err := r.commit(nil); err != nil {
					r.log.Warn("committing throttle counts; they go with the next batch", "err", err)
				}
				r.removeExpired()
			}
			return
		}
		if len(entries) > 0 || len(r.expired) > 0 {
			err := r.logs.Update(entries, r.expired)
			r.mu.Lock()
			r.storing = nil
			r.mu.Unlock()
			if err != nil {
				r.log.Error("storing invocation logs", "err", err, "count", len(entries), "expired", len(r.expired))
			}
			r.expired = r.expired[:0]
		}
		if len(recs) > 0 {
			r.commitRecords(recs)
			r.mu.Lock()
			r.inflight = nil
			r.mu.Unlock()
			r.settled(recs)
		}
		if len(r.expired) >= batchMax {
			r.removeExpired()
		}
		if !all && len(recs) < batchMax && len(entries) < batchMax {
			return
		}
	}
}

// commit commits one RecordInvocations command (recs may be none: it
// still applies retention), with the throttle counts gathered, and notes
// the records retention removed. Committing a record again is harmless:
// a record replaces the one of its ID, and counts in the metric history
// only once.
func (r *recorder) commit(recs []model.Invocation) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	throttles := r.takeThrottles()
	res, err := fsm.Apply(ctx, r.cp, fsm.RecordInvocations{
		Records: recs, Throttles: throttles, Retention: r.retention, Now: time.Now().UTC(),
	})
	if err != nil {
		r.putBackThrottles(throttles)
		return err
	}
	r.expired = append(r.expired, res.Removed...)
	return nil
}

// keepShortLogs stores in this server's log store the logs that only
// records carried (those shorter than a record's tail: see invoke), when
// the records could not be committed: the logs route finds them there
// while the records are held, and keeps them if a record is dropped.
func (r *recorder) keepShortLogs(recs []model.Invocation) {
	var entries []model.LogEntry
	for _, rec := range recs {
		if rec.LogTail != "" && len(rec.LogTail) < worker.LogTailBytes {
			entries = append(entries, LogOfRecord(rec))
		}
	}
	if len(entries) == 0 || r.logs == nil {
		return
	}
	if err := r.logs.Put(entries); err != nil {
		r.log.Error("storing the logs of uncommitted records", "err", err, "count", len(entries))
	}
}

// removeExpired deletes the logs of expired records at once (when no
// batch of logs will carry them).
func (r *recorder) removeExpired() {
	if len(r.expired) == 0 {
		return
	}
	if err := r.logs.Delete(r.expired); err != nil {
		r.log.Error("removing expired logs", "err", err)
	}
	r.expired = r.expired[:0]
}

func (r *recorder) close() {
	close(r.stop)
	<-r.done
}

// LogOfRecord is the log an invocation record carries: all of it when it
// is shorter than the tail a record keeps (the log store then has none),
// else its end. A tail of exactly worker.LogTailBytes may be a whole log
// of that length: it is marked truncated all the same (the server that
// ran the invocation has the whole log in its store and answers with
// that).
func LogOfRecord(rec model.Invocation) model.LogEntry {
	return model.LogEntry{RequestID: rec.ID, Namespace: rec.Namespace, Function: rec.Function, Time: rec.Start,
		Log: rec.LogTail, Truncated: len(rec.LogTail) >= worker.LogTailBytes}
}

// AddRecord queues an invocation record and its log (either may be nil)
// for the next batch: the record is committed through Raft with many
// others, the log stored in this server's log store. It never waits on
// Raft; until the batch commits, PendingRecords and PendingLogs show
// them. A record whose commit fails is kept in the log store and retried
// until it commits (PendingRecords shows it meanwhile, after a restart
// too).
func (s *Service) AddRecord(rec *model.Invocation, entry *model.LogEntry) { s.rec.add(rec, entry) }

// AddThrottle counts an invocation of function fn of namespace ns
// refused with 429 (a concurrency limit, every worker busy, a function
// URL's rate) in the metric history: counts gather by minute and go
// through Raft with the next record batch. It never waits.
func (s *Service) AddThrottle(ns, fn string) { s.rec.addThrottle(ns, fn, time.Now()) }

// AddRecordAndWait queues an invocation record and its log (which may
// be nil) as AddRecord does, and returns once the record is committed,
// or held for retry in this server's log store (where a restart finds
// it), or ctx ends (its error). Its batch commits at once instead of
// after the gathering interval.
func (s *Service) AddRecordAndWait(ctx context.Context, rec model.Invocation, entry *model.LogEntry) error {
	select {
	case <-s.rec.addWaiting(rec, entry):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AddAudit queues an audit entry for the next batch; one whose commit
// fails is kept and retried as records are (after a commit whose outcome
// was unknown, it may be appended twice).
func (s *Service) AddAudit(e model.AuditEntry) { s.rec.addAudit(e) }

// PendingRecords returns the records this server has not committed yet,
// the last version of each by ID, or nil for none.
func (s *Service) PendingRecords() map[string]model.Invocation { return s.rec.pending() }

// PendingRecord returns the record of id this server has not committed
// yet, if any (PendingRecords' entry for id, without building the map).
func (s *Service) PendingRecord(id string) (model.Invocation, bool) { return s.rec.pendingRecord(id) }

// PendingLogs returns the logs this server has not stored yet for which
// keep reports true.
func (s *Service) PendingLogs(keep func(model.LogEntry) bool) []model.LogEntry {
	return s.rec.pendingLogs(keep)
}

// Close commits the records and logs still queued and stops the batcher;
// what it cannot commit stays in the log store, and the next Service over
// it retries it.
func (s *Service) Close() { s.rec.close() }
