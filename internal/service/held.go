package service

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
)

// What the recorder does with records and audit entries whose commit
// failed: it holds them, in memory (so that pending shows them) and in
// the log store's pending buckets (so that a restart does not lose them),
// and retries until they are committed. A held record replaces, when it
// commits, whatever the store has under its ID: last writer wins. That is
// right for the records one server writes (a sync invoke's; the leader's
// destination update of an async one), but a held destination update of
// an event that another leader redrove meanwhile would overwrite the
// redriven outcome.
const (
	// retryFirst is the wait before the first retry; each failed retry
	// doubles it, up to retryMax. A success starts again from retryFirst.
	retryFirst = time.Second
	retryMax   = 30 * time.Second
	// defaultHeldBytes bounds the records held (by heldSize: a record
	// with a full 4 KB log tail counts ~4.5 KB, a short one a few hundred
	// bytes, so 15,000 to 200,000 records). A record beyond it is dropped,
	// logged at ERROR with its ID and counted.
	defaultHeldBytes = 64 << 20
	// defaultHeldAudit bounds the audit entries held: as many as the
	// state store keeps (state.maxAudit).
	defaultHeldAudit = 10000
)

// limits bound what a recorder holds for retry.
type limits struct {
	heldBytes int           // records, by heldSize
	heldAudit int           // audit entries
	gather    time.Duration // how long records gather before a commit
}

var defaultLimits = limits{heldBytes: defaultHeldBytes, heldAudit: defaultHeldAudit, gather: batchInterval}

// heldSize is what a held record counts against limits.heldBytes: its
// variable parts and a fixed allowance for the rest (held in memory and
// as JSON on disk).
func heldSize(r model.Invocation) int {
	return 300 + len(r.ID) + len(r.Namespace) + len(r.Function) + len(r.Trigger) + len(r.Status) +
		len(r.ErrorType) + len(r.Result) + len(r.LogTail) + len(r.Worker) + len(r.Destination)
}

// recorderMetrics count what the recorder holds and what it could not
// keep.
type recorderMetrics struct {
	held    *prometheus.GaugeVec   // kind
	dropped *prometheus.CounterVec // kind, reason
}

func newRecorderMetrics(reg prometheus.Registerer) recorderMetrics {
	m := recorderMetrics{
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nimbus_records_held",
			Help: "Invocation records (kind invocation) and audit entries (kind audit) this server could not commit yet and retries.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_records_dropped_total",
			Help: "Invocation records and audit entries given up on: refused by the state machine (reason refused) or beyond what a server holds for retry (reason over_cap).",
		}, []string{"kind", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.held, m.dropped)
	}
	return m
}

// refused reports whether err is the state machine's answer to a command
// it applied and refused (a kind fsm.ErrorCode names): committing the
// same command again would be refused again.
func refused(err error) bool { return fsm.ErrorCode(err) != "" }

// load takes over what an earlier run of this server held. It runs before
// run starts.
func (r *recorder) load() {
	if r.logs == nil {
		return
	}
	recs, audit, err := r.logs.Pending()
	if err != nil {
		r.log.Error("reading the records held by an earlier run: they stay in the log store, unretried", "err", err)
		return
	}
	for _, rec := range recs {
		r.held[rec.ID] = rec
		r.heldBytes += heldSize(rec)
	}
	r.heldAudit = audit
	if n := len(audit); n > 0 {
		r.nextSeq = audit[n-1].Seq + 1
	}
	if r.holding() {
		r.log.Warn("retrying the records an earlier run could not commit", "records", len(recs), "audit_entries", len(audit))
		r.retryAt = time.Now()
		r.setHeldGauges()
	}
}

// holding reports whether anything is held. Called by run's goroutine
// (the only one that changes what is held) without the lock.
func (r *recorder) holding() bool { return len(r.held) > 0 || len(r.heldAudit) > 0 }

func (r *recorder) retryDue() bool { return r.holding() && !time.Now().Before(r.retryAt) }

func (r *recorder) setHeldGauges() {
	r.metrics.held.WithLabelValues("invocation").Set(float64(len(r.held)))
	r.metrics.held.WithLabelValues("audit").Set(float64(len(r.heldAudit)))
}

// putPending and deletePending are the log store's PutPending and
// DeletePending, or nothing without a log store (some tests: what is held
// is then in memory only).
func (r *recorder) putPending(recs []model.Invocation, audit []logstore.PendingAudit) error {
	if r.logs == nil {
		return nil
	}
	return r.logs.PutPending(recs, audit)
}

func (r *recorder) deletePending(ids []string, audit []uint64) error {
	if r.logs == nil {
		return nil
	}
	return r.logs.DeletePending(ids, audit)
}

// failed schedules the next retry after a failed commit.
func (r *recorder) failed() {
	r.backoff = min(max(2*r.backoff, retryFirst), retryMax)
	r.retryAt = time.Now().Add(r.backoff)
}

// hold keeps records and audit entries whose commit failed (or that
// arrived while others were held: they wait their turn, so that a
// record's versions commit in order), up to the limits, and stores them
// in the log store. Call it before the caller's batch leaves inflight, so
// that pending sees each record throughout.
func (r *recorder) hold(recs []model.Invocation, audit []model.AuditEntry) {
	var keep []model.Invocation
	var over []string
	var keepAudit []logstore.PendingAudit
	var overAudit []model.AuditEntry
	r.mu.Lock()
	for _, rec := range recs {
		size := heldSize(rec)
		old, known := r.held[rec.ID]
		if known {
			r.heldBytes -= heldSize(old)
		} else if r.heldBytes+size > r.limits.heldBytes {
			over = append(over, rec.ID)
			continue
		}
		r.held[rec.ID] = rec
		r.heldBytes += size
		keep = append(keep, rec)
	}
	for _, e := range audit {
		if len(r.heldAudit) >= r.limits.heldAudit {
			overAudit = append(overAudit, e)
			continue
		}
		a := logstore.PendingAudit{Seq: r.nextSeq, Entry: e}
		r.nextSeq++
		r.heldAudit = append(r.heldAudit, a)
		keepAudit = append(keepAudit, a)
	}
	r.mu.Unlock()
	r.setHeldGauges()
	if len(over) > 0 {
		r.log.Error("dropping invocation records: this server holds as many uncommitted records as it may",
			"cap_bytes", r.limits.heldBytes, "held", len(r.held), "count", len(over), "ids", over)
		r.metrics.dropped.WithLabelValues("invocation", "over_cap").Add(float64(len(over)))
	}
	if len(overAudit) > 0 {
		r.log.Error("dropping audit entries: this server holds as many uncommitted audit entries as it may",
			"cap", r.limits.heldAudit, "count", len(overAudit), "entries", overAudit)
		r.metrics.dropped.WithLabelValues("audit", "over_cap").Add(float64(len(overAudit)))
	}
	// The logs that only records carry go to the log store now: a dropped
	// record keeps its log at least.
	r.keepShortLogs(recs)
	if err := r.putPending(keep, keepAudit); err != nil {
		r.unsaved = true
		r.log.Error("storing uncommitted records in the log store: they are held in memory only until it works",
			"err", err, "records", len(keep), "audit_entries", len(keepAudit))
	}
}

// retry commits what is held, a batch at a time, until all of it is
// committed or a commit fails; the next try then waits (see failed).
func (r *recorder) retry() {
	if r.unsaved {
		r.saveHeld()
	}
	for len(r.heldAudit) > 0 {
		batch := r.heldAudit[:min(len(r.heldAudit), batchMax)]
		entries := make([]model.AuditEntry, len(batch))
		for i, a := range batch {
			entries[i] = a.Entry
		}
		err := r.applyAudit(entries)
		if err != nil && !refused(err) {
			r.retryFailed(err)
			return
		}
		if err != nil {
			r.dropAudit(entries, err)
		}
		r.releaseAudit(len(batch))
	}
	for len(r.held) > 0 {
		batch := make([]model.Invocation, 0, min(len(r.held), batchMax))
		for _, rec := range r.held {
			if len(batch) == batchMax {
				break
			}
			batch = append(batch, rec)
		}
		err := r.commit(batch)
		if err != nil && refused(err) {
			// commitEach releases what it committed or dropped.
			if err = r.commitEach(batch); err == nil {
				continue
			}
		}
		if err != nil {
			r.retryFailed(err)
			return
		}
		r.release(batch)
	}
	r.backoff = 0
	r.log.Info("committed the held records")
}

func (r *recorder) retryFailed(err error) {
	r.failed()
	r.log.Warn("committing held records failed; retrying", "err", err,
		"records", len(r.held), "audit_entries", len(r.heldAudit), "retry_in", r.backoff)
}

// commitEach commits the records of a refused batch one at a time, to
// find the ones refused: each of those is dropped, logged with its ID.
// The committed ones leave held; it stops at the first error that is not
// a refusal and returns it.
func (r *recorder) commitEach(batch []model.Invocation) error {
	for _, rec := range batch {
		one := []model.Invocation{rec}
		err := r.commit(one)
		if err != nil && !refused(err) {
			return err
		}
		if err != nil {
			r.log.Error("dropping an invocation record the state machine refused", "request_id", rec.ID, "function", rec.Function, "err", err)
			r.metrics.dropped.WithLabelValues("invocation", "refused").Inc()
		}
		r.release(one)
	}
	return nil
}

// release forgets held records once committed (or dropped).
func (r *recorder) release(recs []model.Invocation) {
	ids := make([]string, len(recs))
	r.mu.Lock()
	for i, rec := range recs {
		ids[i] = rec.ID
		if old, ok := r.held[rec.ID]; ok {
			r.heldBytes -= heldSize(old)
			delete(r.held, rec.ID)
		}
	}
	r.mu.Unlock()
	r.setHeldGauges()
	if err := r.deletePending(ids, nil); err != nil {
		r.log.Warn("removing committed records from the log store: a restart commits them again (harmless: records replace by ID)", "err", err)
	}
}

// releaseAudit forgets the first n held audit entries once committed (or
// dropped).
func (r *recorder) releaseAudit(n int) {
	seqs := make([]uint64, n)
	for i, a := range r.heldAudit[:n] {
		seqs[i] = a.Seq
	}
	r.mu.Lock()
	r.heldAudit = r.heldAudit[n:]
	r.mu.Unlock()
	r.setHeldGauges()
	if err := r.deletePending(nil, seqs); err != nil {
		r.log.Warn("removing committed audit entries from the log store: a restart commits them again", "err", err)
	}
}

func (r *recorder) dropAudit(entries []model.AuditEntry, err error) {
	r.log.Error("dropping audit entries the state machine refused", "err", err, "count", len(entries), "entries", entries)
	r.metrics.dropped.WithLabelValues("audit", "refused").Add(float64(len(entries)))
}

// saveHeld stores again all that is held, after storing some of it
// failed.
func (r *recorder) saveHeld() {
	recs := make([]model.Invocation, 0, len(r.held))
	for _, rec := range r.held {
		recs = append(recs, rec)
	}
	if err := r.putPending(recs, r.heldAudit); err != nil {
		r.log.Error("storing uncommitted records in the log store: they are held in memory only until it works",
			"err", err, "records", len(recs), "audit_entries", len(r.heldAudit))
		return
	}
	r.unsaved = false
}

// applyAudit commits audit entries.
func (r *recorder) applyAudit(entries []model.AuditEntry) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	_, err := fsm.Apply(ctx, r.cp, fsm.Audit{Entries: entries})
	return err
}

// commitAudit commits a fresh batch of audit entries, or holds it.
func (r *recorder) commitAudit(entries []model.AuditEntry) {
	if r.holding() {
		r.hold(nil, entries)
		return
	}
	err := r.applyAudit(entries)
	switch {
	case err == nil:
	case refused(err):
		r.dropAudit(entries, err)
	default:
		r.log.Error("committing audit entries; holding them for retry", "err", err, "count", len(entries))
		r.hold(nil, entries)
		r.failed()
	}
}

// commitRecords commits a fresh batch of records, or holds it: while
// records are held, new ones join them, so that a record's versions are
// committed in order.
func (r *recorder) commitRecords(recs []model.Invocation) {
	if r.holding() {
		r.hold(recs, nil)
		return
	}
	err := r.commit(recs)
	if err == nil {
		return
	}
	r.hold(recs, nil)
	if refused(err) {
		// Find the refused ones at once (retry commits them one by one).
		r.retryAt = time.Now()
		return
	}
	r.log.Error("committing invocation records; holding them for retry", "err", err, "count", len(recs))
	r.failed()
}
