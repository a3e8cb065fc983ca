package state

import "nimbus/internal/model"

// maxAudit bounds the audit log kept in the state store; the oldest go
// first.
const maxAudit = 10000

// AddAudit appends entries to the audit log.
func (s *Store) AddAudit(entries []model.AuditEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audit = append(s.audit, entries...)
	if over := len(s.audit) - maxAudit; over > 0 {
		s.audit = append([]model.AuditEntry(nil), s.audit[over:]...)
	}
}

// Audit returns the newest limit entries (all for 0), oldest first.
func (s *Store) Audit(limit int) []model.AuditEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	from := 0
	if limit > 0 && len(s.audit) > limit {
		from = len(s.audit) - limit
	}
	return append([]model.AuditEntry{}, s.audit[from:]...)
}
