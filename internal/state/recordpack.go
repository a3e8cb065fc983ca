package state

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"time"

	"nimbus/internal/model"
)

// A stored record keeps as fields only what the indexes and queries read
// (ID, namespace, function, trigger, status, start) and the rest of
// model.Invocation packed in one string: the figures as varints, the
// strings and the result as lengths and bytes, each only when it is not
// zero. model.Invocation is 304 bytes however little of it is set; a
// stored record is 136 bytes and its packed string (a quiet function's
// is about 60): 357 bytes of heap a record in all, with the indexes,
// where it took 490 (BenchmarkRecordHeap). Reads unpack the page they
// return.

// Presence bits of the packed fields.
const (
	packRevision = 1 << iota
	packDuration
	packBilled
	packMemory
	packMaxMemory
	packInit
	packColdStart
	packErrorType
	packResult
	packLogTail
	packWorker
	packAttempts
	packEnqueuedAt
	packDestination
	packProcessesLeft
	packCPU
	packVersion
)

// packRest appends r's fields besides the stored record's own to b.
func packRest(b []byte, r *model.Invocation) []byte {
	var mask uint64
	set := func(bit uint64, nonzero bool) {
		if nonzero {
			mask |= bit
		}
	}
	set(packRevision, r.Revision != 0)
	set(packDuration, r.DurationMS != 0)
	set(packBilled, r.BilledMS != 0)
	set(packMemory, r.MemoryMB != 0)
	set(packMaxMemory, r.MaxMemoryMB != 0)
	set(packInit, r.InitMS != 0)
	set(packColdStart, r.ColdStart)
	set(packErrorType, r.ErrorType != "")
	set(packResult, len(r.Result) > 0)
	set(packLogTail, r.LogTail != "")
	set(packWorker, r.Worker != "")
	set(packAttempts, r.Attempts != 0)
	set(packEnqueuedAt, !r.EnqueuedAt.IsZero())
	set(packDestination, r.Destination != "")
	set(packProcessesLeft, r.ProcessesLeft != 0)
	set(packCPU, r.CPUMS != 0)
	set(packVersion, r.Version != 0)
	b = binary.AppendUvarint(b, mask)
	varint := func(bit uint64, v int64) {
		if mask&bit != 0 {
			b = binary.AppendVarint(b, v)
		}
	}
	float := func(bit uint64, f float64) {
		if mask&bit != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	str := func(bit uint64, s string) {
		if mask&bit != 0 {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	varint(packRevision, r.Revision)
	float(packDuration, r.DurationMS)
	varint(packBilled, r.BilledMS)
	varint(packMemory, int64(r.MemoryMB))
	varint(packMaxMemory, int64(r.MaxMemoryMB))
	float(packInit, r.InitMS)
	str(packErrorType, r.ErrorType)
	str(packResult, string(r.Result))
	str(packLogTail, r.LogTail)
	str(packWorker, r.Worker)
	varint(packAttempts, int64(r.Attempts))
	if mask&packEnqueuedAt != 0 {
		b = binary.AppendVarint(b, r.EnqueuedAt.UnixNano())
		// A time without a location of its own is UTC; one with (a
		// record decoded with an offset) keeps its offset in seconds.
		_, off := r.EnqueuedAt.Zone()
		if r.EnqueuedAt.Location() == time.UTC {
			off = math.MinInt32
		}
		b = binary.AppendVarint(b, int64(off))
	}
	str(packDestination, r.Destination)
	varint(packProcessesLeft, int64(r.ProcessesLeft))
	float(packCPU, r.CPUMS)
	varint(packVersion, r.Version)
	return b
}

// unpackRest sets r's fields besides the stored record's own from what
// packRest wrote.
func unpackRest(p string, r *model.Invocation) {
	off := 0
	uv := func() uint64 {
		v, n := binary.Uvarint([]byte(p[off:min(len(p), off+binary.MaxVarintLen64)]))
		off += n
		return v
	}
	mask := uv()
	varint := func(bit uint64) int64 {
		if mask&bit == 0 {
			return 0
		}
		v, n := binary.Varint([]byte(p[off:min(len(p), off+binary.MaxVarintLen64)]))
		off += n
		return v
	}
	float := func(bit uint64) float64 {
		if mask&bit == 0 {
			return 0
		}
		v := binary.LittleEndian.Uint64([]byte(p[off : off+8]))
		off += 8
		return math.Float64frombits(v)
	}
	str := func(bit uint64) string {
		if mask&bit == 0 {
			return ""
		}
		n := int(uv())
		s := p[off : off+n]
		off += n
		return s
	}
	r.Revision = varint(packRevision)
	r.DurationMS = float(packDuration)
	r.BilledMS = varint(packBilled)
	r.MemoryMB = int(varint(packMemory))
	r.MaxMemoryMB = int(varint(packMaxMemory))
	r.InitMS = float(packInit)
	r.ColdStart = mask&packColdStart != 0
	r.ErrorType = str(packErrorType)
	if s := str(packResult); s != "" {
		r.Result = json.RawMessage(s)
	}
	r.LogTail = str(packLogTail)
	r.Worker = str(packWorker)
	r.Attempts = int(varint(packAttempts))
	if mask&packEnqueuedAt != 0 {
		ns := varint(packEnqueuedAt)
		t := time.Unix(0, ns)
		if off := varint(packEnqueuedAt); off == math.MinInt32 {
			t = t.UTC()
		} else {
			t = t.In(time.FixedZone("", int(off)))
		}
		r.EnqueuedAt = t
	}
	r.Destination = str(packDestination)
	r.ProcessesLeft = int(varint(packProcessesLeft))
	r.CPUMS = float(packCPU)
	r.Version = varint(packVersion)
}
