package logstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"nimbus/internal/model"

	bolt "go.etcd.io/bbolt"
)

// What this server could not commit through Raft yet: the recorder
// (internal/service) keeps it here until it commits, so that a restart
// does not lose it.
var (
	bucketPendingRecords = []byte("pending-records") // invocation id -> Invocation JSON
	bucketPendingAudit   = []byte("pending-audit")   // sequence (8 bytes, big endian) -> AuditEntry JSON
)

// PendingAudit is an audit entry waiting for its commit, under a
// sequence number its owner chooses (unique in the store, ascending in
// the order the entries were made).
type PendingAudit struct {
	Seq   uint64
	Entry model.AuditEntry
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// PutPending stores records (each replacing any stored under its ID) and
// audit entries waiting for their commit, in one transaction, and syncs
// the file: unlike logs, these are on disk nowhere else.
func (s *Store) PutPending(recs []model.Invocation, audit []PendingAudit) error {
	if len(recs) == 0 && len(audit) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb, ab := tx.Bucket(bucketPendingRecords), tx.Bucket(bucketPendingAudit)
		for _, r := range recs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := rb.Put([]byte(r.ID), b); err != nil {
				return err
			}
		}
		for _, a := range audit {
			b, err := json.Marshal(a.Entry)
			if err != nil {
				return err
			}
			if err := ab.Put(seqKey(a.Seq), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing pending records: %w", err)
	}
	return s.db.Sync()
}

// DeletePending removes the records with the given IDs and the audit
// entries with the given sequence numbers (those committed), in one
// transaction. Unknown ones are ignored.
func (s *Store) DeletePending(ids []string, audit []uint64) error {
	if len(ids) == 0 && len(audit) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		rb, ab := tx.Bucket(bucketPendingRecords), tx.Bucket(bucketPendingAudit)
		for _, id := range ids {
			if err := rb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, seq := range audit {
			if err := ab.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Pending returns what PutPending stored and DeletePending has not
// removed: the records, and the audit entries in sequence order.
func (s *Store) Pending() ([]model.Invocation, []PendingAudit, error) {
	var recs []model.Invocation
	var audit []PendingAudit
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketPendingRecords).ForEach(func(_, v []byte) error {
			var r model.Invocation
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPendingAudit).ForEach(func(k, v []byte) error {
			var e model.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if len(k) != 8 {
				return fmt.Errorf("pending audit key %x is not a sequence number", k)
			}
			audit = append(audit, PendingAudit{Seq: binary.BigEndian.Uint64(k), Entry: e})
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading pending records: %w", err)
	}
	return recs, audit, nil
}
