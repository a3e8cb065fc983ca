package state

import "nimbus/internal/model"

// A record's LogTail nearly always begins with its START line and ends
// with its END and REPORT lines (model.AppendLogStart, AppendLogEnd),
// which say again what the record's fields say: about 230 of the 250
// bytes of a quiet function's tail, and a third of what a record holds
// in memory. The store keeps a tail without the lines its fields rebuild
// byte for byte, and rebuilds them when the record is read: readers,
// snapshots and the Raft log see the tail as it came.

// logFrame says which framing lines a stored tail lacks.
type logFrame uint8

const (
	frameStart logFrame = 1 << iota // the START line, first in the tail
	frameEnd                        // the END and REPORT lines, last
)

// elideFrame removes from r.LogTail the framing lines that r's fields
// rebuild exactly, and says which it removed. A tail cut to its last
// bytes (a long log) has lost its START line and keeps what is left.
// The tail left shares the whole one's memory: the caller packs it
// (storedRecord.set), which copies it.
func elideFrame(r *model.Invocation) logFrame {
	if r.LogTail == "" {
		return 0
	}
	var buf [384]byte
	var f logFrame
	tail := r.LogTail
	if end := model.AppendLogEnd(buf[:0], model.LogReportOf(r)); len(tail) >= len(end) && tail[len(tail)-len(end):] == string(end) {
		tail, f = tail[:len(tail)-len(end)], frameEnd
	}
	if start := model.AppendLogStart(buf[:0], r.ID, model.VersionString(r.Version)); len(tail) >= len(start) && tail[:len(start)] == string(start) {
		tail, f = tail[len(start):], f|frameStart
	}
	r.LogTail = tail
	return f
}

// withFrame is r with the framing lines f says its tail lacks put back.
func withFrame(r model.Invocation, f logFrame) model.Invocation {
	if f == 0 {
		return r
	}
	b := make([]byte, 0, len(r.LogTail)+3*len(r.ID)+200)
	if f&frameStart != 0 {
		b = model.AppendLogStart(b, r.ID, model.VersionString(r.Version))
	}
	b = append(b, r.LogTail...)
	if f&frameEnd != 0 {
		b = model.AppendLogEnd(b, model.LogReportOf(&r))
	}
	r.LogTail = string(b)
	return r
}
