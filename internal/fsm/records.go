package fsm

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"nimbus/internal/model"
)

// RecordInvocations is the one command a warm load commits all the time:
// every server batches its invocation records into entries of up to 512,
// one every 100 ms. Its body is a compact binary encoding rather than
// JSON: decoding 130 records from JSON cost about 0.4 ms of CPU on every
// server, the binary form 0.03 ms (BenchmarkDecodeRecords).
// Entries written as JSON (before this encoding) still decode: a JSON body
// starts with '{', a binary one with its version byte.
//
// The binary body, version 1:
//
//	0x01  retention.per_function(varint) retention.max_age(varint ns)
//	      now(time) count(uvarint) record...
//
// and each record these fields of model.Invocation, in this order, fixed
// here and not by the type's declaration (it was client.Invocation's
// order when the encoding was made; testdata/records-v*.hex pins the
// bytes):
//
//	id namespace function revision trigger status start duration_ms
//	billed_ms memory_mb max_memory_mb init_ms cold_start error_type result
//	log_tail worker attempts enqueued_at destination
//
// strings and byte strings as uvarint length then bytes, integers as
// varints, floats as 8 bytes (IEEE 754, big-endian), booleans as one byte,
// times as a presence byte then varint Unix nanoseconds (UTC).
//
// Version 2 (0x02) is version 1 with one more field at the end of each
// record: processes_left (varint). Version 1 bodies still decode (0
// processes left).
//
// Version 3 (0x03) is version 2 followed by the batch's throttle counts:
//
//	count(uvarint) (namespace function minute(time) count(uvarint))...
//
// A batch without throttles is written as version 2, which a server of
// the release before version 3 still reads.
//
// Version 4 (0x04) is version 3 with one more field at the end of each
// record, cpu_ms (uvarint microseconds), and the metric history's
// retentions after the throttle counts:
//
//	metric_minutes(varint ns) metric_hours(varint ns) metric_days(varint ns)
//
// A batch with no CPU time and default metric retentions is written as
// version 3 or 2, which the releases before still read.
//
// Version 5 (0x05) is version 4 with one more field at the end of each
// record, after cpu_ms: version (varint; 0 for $LATEST). Only a batch
// with a record of a published version is written as version 5.
const (
	recordsV1 = 0x01
	recordsV2 = 0x02
	recordsV3 = 0x03
	recordsV4 = 0x04
	recordsV5 = 0x05
)

// minRecordBytes is the least a record takes (version 2): ten empty
// strings and six small integers (a byte each), two absent times (a byte
// each), two floats (8 bytes each) and a boolean.
const minRecordBytes = 10 + 6 + 2 + 16 + 1

// errShortRecords is a binary records body cut short or malformed.
var errShortRecords = errors.New("truncated or malformed binary records")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), t.UnixNano())
}

// encodeRecords appends c's binary body to b: version 5 when a record
// is of a published version, else version 4 when it has CPU times or
// metric retentions, else version 3 when it has throttle counts, else
// version 2.
func encodeRecords(b []byte, c RecordInvocations) []byte {
	for i := range c.Records {
		if c.Records[i].Version != 0 {
			return encodeRecordsVersion(b, c, recordsV5)
		}
	}
	ret := c.Retention
	if ret.MetricMinutes != 0 || ret.MetricHours != 0 || ret.MetricDays != 0 {
		return encodeRecordsVersion(b, c, recordsV4)
	}
	for i := range c.Records {
		if c.Records[i].CPUMS > 0 {
			return encodeRecordsVersion(b, c, recordsV4)
		}
	}
	if len(c.Throttles) > 0 {
		return encodeRecordsVersion(b, c, recordsV3)
	}
	return encodeRecordsVersion(b, c, recordsV2)
}

// encodeRecordsVersion appends c's binary body in version v to b.
func encodeRecordsVersion(b []byte, c RecordInvocations, v byte) []byte {
	b = append(b, v)
	b = binary.AppendVarint(b, int64(c.Retention.PerFunction))
	b = binary.AppendVarint(b, int64(c.Retention.MaxAge))
	b = appendTime(b, c.Now)
	b = binary.AppendUvarint(b, uint64(len(c.Records)))
	for i := range c.Records {
		r := &c.Records[i]
		b = appendString(b, r.ID)
		b = appendString(b, r.Namespace)
		b = appendString(b, r.Function)
		b = binary.AppendVarint(b, r.Revision)
		b = appendString(b, r.Trigger)
		b = appendString(b, r.Status)
		b = appendTime(b, r.Start)
		b = appendFloat(b, r.DurationMS)
		b = binary.AppendVarint(b, r.BilledMS)
		b = binary.AppendVarint(b, int64(r.MemoryMB))
		b = binary.AppendVarint(b, int64(r.MaxMemoryMB))
		b = appendFloat(b, r.InitMS)
		b = appendBool(b, r.ColdStart)
		b = appendString(b, r.ErrorType)
		b = appendString(b, string(r.Result))
		b = appendString(b, r.LogTail)
		b = appendString(b, r.Worker)
		b = binary.AppendVarint(b, int64(r.Attempts))
		b = appendTime(b, r.EnqueuedAt)
		b = appendString(b, r.Destination)
		if v >= recordsV2 {
			b = binary.AppendVarint(b, int64(r.ProcessesLeft))
		}
		if v >= recordsV4 {
			b = binary.AppendUvarint(b, cpuMicros(r.CPUMS))
		}
		if v >= recordsV5 {
			b = binary.AppendVarint(b, r.Version)
		}
	}
	if v >= recordsV3 {
		b = binary.AppendUvarint(b, uint64(len(c.Throttles)))
		for _, t := range c.Throttles {
			b = appendString(b, t.Namespace)
			b = appendString(b, t.Function)
			b = appendTime(b, t.Minute)
			b = binary.AppendUvarint(b, uint64(max(t.Count, 0)))
		}
	}
	if v >= recordsV4 {
		b = binary.AppendVarint(b, int64(c.Retention.MetricMinutes))
		b = binary.AppendVarint(b, int64(c.Retention.MetricHours))
		b = binary.AppendVarint(b, int64(c.Retention.MetricDays))
	}
	return b
}

// cpuMicros is a CPU time in ms as whole microseconds (0 for nonsense).
func cpuMicros(ms float64) uint64 {
	if !(ms > 0) || ms > math.MaxInt64/1000 {
		return 0
	}
	return uint64(math.Round(ms * 1000))
}

// recordReader reads a binary records body; the first malformed read
// sets err and every later one returns zero values.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortRecords
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortRecords
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortRecords
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *recordReader) string() string { return string(r.bytes()) }

// interned is string for the fields a batch repeats (namespace, function,
// trigger, status, worker, error type): one copy per distinct value, in
// the batch and in the records the store keeps.
func (r *recordReader) interned(seen map[string]string) string {
	b := r.bytes()
	if s, ok := seen[string(b)]; ok {
		return s
	}
	s := string(b)
	seen[s] = s
	return s
}

func (r *recordReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errShortRecords
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *recordReader) float() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errShortRecords
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *recordReader) bool() bool { return r.byte() != 0 }

func (r *recordReader) time() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	return time.Unix(0, r.varint()).UTC()
}

// decodeRecords decodes a binary body (version byte included).
func decodeRecords(body []byte) (RecordInvocations, error) {
	var c RecordInvocations
	r := &recordReader{b: body}
	v := r.byte()
	if v < recordsV1 || v > recordsV5 {
		return c, errors.New("unknown binary records version")
	}
	c.Retention = model.Retention{PerFunction: int(r.varint()), MaxAge: time.Duration(r.varint())}
	c.Now = r.time()
	n := r.uvarint()
	// A count beyond what the body can hold is malformed, and must not
	// size an allocation.
	least := minRecordBytes
	if v == recordsV1 {
		least-- // no processes_left
	}
	if r.err != nil || n > uint64(len(r.b)/least) {
		return c, errShortRecords
	}
	c.Records = make([]model.Invocation, n)
	seen := map[string]string{}
	for i := range c.Records {
		rec := &c.Records[i]
		rec.ID = r.string()
		rec.Namespace = r.interned(seen)
		rec.Function = r.interned(seen)
		rec.Revision = r.varint()
		rec.Trigger = r.interned(seen)
		rec.Status = r.interned(seen)
		rec.Start = r.time()
		rec.DurationMS = r.float()
		rec.BilledMS = r.varint()
		rec.MemoryMB = int(r.varint())
		rec.MaxMemoryMB = int(r.varint())
		rec.InitMS = r.float()
		rec.ColdStart = r.bool()
		rec.ErrorType = r.interned(seen)
		if res := r.bytes(); len(res) > 0 {
			rec.Result = append([]byte(nil), res...)
		}
		rec.LogTail = r.string()
		rec.Worker = r.interned(seen)
		rec.Attempts = int(r.varint())
		rec.EnqueuedAt = r.time()
		rec.Destination = r.string()
		if v >= recordsV2 {
			rec.ProcessesLeft = int(r.varint())
		}
		if v >= recordsV4 {
			rec.CPUMS = float64(r.uvarint()) / 1000
		}
		if v >= recordsV5 {
			rec.Version = r.varint()
		}
	}
	if v >= recordsV3 {
		// A throttle count takes at least 5 bytes (two empty strings, an
		// absent time, a count).
		k := r.uvarint()
		if r.err != nil || k > uint64(len(r.b)/5) {
			return c, errShortRecords
		}
		c.Throttles = make([]model.ThrottleCount, k)
		for i := range c.Throttles {
			t := &c.Throttles[i]
			t.Namespace = r.interned(seen)
			t.Function = r.interned(seen)
			t.Minute = r.time()
			t.Count = int64(min(r.uvarint(), math.MaxInt64))
		}
	}
	if v >= recordsV4 {
		c.Retention.MetricMinutes = time.Duration(r.varint())
		c.Retention.MetricHours = time.Duration(r.varint())
		c.Retention.MetricDays = time.Duration(r.varint())
	}
	if r.err != nil {
		return c, r.err
	}
	if len(r.b) != 0 {
		return c, errors.New("trailing bytes after binary records")
	}
	return c, nil
}
