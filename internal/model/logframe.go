package model

import (
	"strconv"
	"time"
)

// An invocation's log is framed as Lambda frames it: a START line before
// what the function wrote, an END and a REPORT line after. The worker
// writes the lines with these functions, and the record store rebuilds
// them from the record's fields with the same ones (see LogFrame), so
// the two never differ by a byte.

// AppendLogStart appends the START line of invocation id, run as version
// (Latest or a published version's number).
func AppendLogStart(b []byte, id, version string) []byte {
	b = append(b, "START RequestId: "...)
	b = append(b, id...)
	b = append(b, " Version: "...)
	b = append(b, version...)
	return append(b, '\n')
}

// LogReport is what an invocation's END and REPORT lines say.
type LogReport struct {
	ID            string
	DurationMS    float64 // to the microsecond, as Invocation.DurationMS
	BilledMS      int64
	MemoryMB      int
	MaxMemoryMB   int
	Cold          bool
	InitMS        float64 // written for a cold start only
	ProcessesLeft int     // written when not 0
}

// AppendLogEnd appends the END and REPORT lines of r, each ending in a
// newline.
func AppendLogEnd(b []byte, r LogReport) []byte {
	b = append(b, "END RequestId: "...)
	b = append(b, r.ID...)
	b = append(b, "\nREPORT RequestId: "...)
	b = append(b, r.ID...)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, r.DurationMS, 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, r.BilledMS, 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(r.MemoryMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendInt(b, int64(r.MaxMemoryMB), 10)
	b = append(b, " MB"...)
	if r.Cold {
		b = append(b, "\tInit Duration: "...)
		b = strconv.AppendFloat(b, r.InitMS, 'f', 2, 64)
		b = append(b, " ms"...)
	}
	if r.ProcessesLeft > 0 {
		b = append(b, "\tProcesses Left: "...)
		b = strconv.AppendInt(b, int64(r.ProcessesLeft), 10)
	}
	return append(b, '\n')
}

// LogReportOf is what the END and REPORT lines of r's log say, from its
// fields.
func LogReportOf(r *Invocation) LogReport {
	return LogReport{ID: r.ID, DurationMS: r.DurationMS, BilledMS: r.BilledMS, MemoryMB: r.MemoryMB,
		MaxMemoryMB: r.MaxMemoryMB, Cold: r.ColdStart, InitMS: r.InitMS, ProcessesLeft: r.ProcessesLeft}
}

// DurationMS is d in milliseconds, to the microsecond: a record's
// durations, and the log's.
func DurationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
