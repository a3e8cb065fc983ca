package state

import (
	"encoding/binary"
	"math"
	"sort"
)

// Sealed buckets: the metric history keeps each function's recent
// buckets as structs (about 250 bytes each, most of it the 32-count
// duration histogram) and seals the older ones, which nothing counts
// into any more in the normal course, into compact byte chunks: only
// the fields that are not zero, as varints, and the histogram's
// non-empty buckets (20 to 50 bytes a bucket). Queries decode them as
// they read; a count that comes late for a sealed bucket opens a new
// struct for the same start, and every reader adds buckets up, so two
// buckets of one start are the same as one. Which buckets are sealed
// follows from the batch times in the log, but the results never
// depend on it.

// openFor is how long a tier's buckets stay structs after they end, in
// minutes: long enough for the counts of a batch or two late (records
// arrive within 100 ms of an invocation's end, counted at its start);
// a longer invocation's or a held record's count opens a struct again.
// Every function invoked lately holds its open buckets (250 bytes each),
// and 10, 60 and 1,440 minutes here held 1.35 KB more for each than
// these (BenchmarkActiveHistoryHeap).
var openFor = [tiers]int64{2, 5, 5}

// sealing is off only in tests, to compare with a history that keeps
// every bucket open.
var sealing = true

// chunkBuckets is how many buckets a chunk holds before a new one starts.
const chunkBuckets = 64

// chunk is a run of sealed buckets of one tier, in the order sealed
// (ascending start, but for late ones), and the range of their starts.
type chunk struct {
	first, last  int64 // the least and greatest start in it
	lastAppended int64 // the start of the bucket appended last
	n            int
	data         []byte
}

// Presence bits of an encoded bucket's fields.
const (
	hasInvocations = 1 << iota
	hasErrors
	hasThrottles
	hasColdStarts
	hasDurationSum
	hasLastStart
	hasBilled
	hasMBMS
	hasCPU
	hasProv
	hasMaxMemory
	hasDurations
	hasErrorTypes
)

// appendBucket encodes b after the previous start prev (the start as a
// varint delta).
func appendBucket(out []byte, b *bucket, prev int64) []byte {
	out = binary.AppendVarint(out, b.start-prev)
	var mask uint64
	set := func(bit uint64, nonzero bool) {
		if nonzero {
			mask |= bit
		}
	}
	set(hasInvocations, b.invocations != 0)
	set(hasErrors, b.errors != 0)
	set(hasThrottles, b.throttles != 0)
	set(hasColdStarts, b.coldStarts != 0)
	set(hasDurationSum, b.durationUS != 0)
	set(hasLastStart, b.lastStart != 0)
	set(hasBilled, b.billedMS != 0)
	set(hasMBMS, b.mbMS != 0)
	set(hasCPU, b.cpuUS != 0)
	set(hasProv, b.provMBMS != 0)
	set(hasMaxMemory, b.maxMemoryMB != 0)
	nonEmpty := 0
	for _, n := range b.durations {
		if n != 0 {
			nonEmpty++
		}
	}
	set(hasDurations, nonEmpty > 0)
	set(hasErrorTypes, len(b.errorTypes) > 0)
	out = binary.AppendUvarint(out, mask)
	for _, f := range []struct {
		bit uint64
		v   uint64
	}{{hasInvocations, b.invocations}, {hasErrors, b.errors}, {hasThrottles, b.throttles}, {hasColdStarts, b.coldStarts}} {
		if mask&f.bit != 0 {
			out = binary.AppendUvarint(out, f.v)
		}
	}
	if mask&hasDurationSum != 0 {
		out = binary.AppendUvarint(out, b.durationUS)
	}
	if mask&hasLastStart != 0 {
		out = binary.AppendVarint(out, b.lastStart-b.start*60e9)
	}
	for _, f := range []struct {
		bit uint64
		v   uint64
	}{{hasBilled, b.billedMS}, {hasMBMS, b.mbMS}, {hasCPU, b.cpuUS}, {hasProv, b.provMBMS}, {hasMaxMemory, uint64(b.maxMemoryMB)}} {
		if mask&f.bit != 0 {
			out = binary.AppendUvarint(out, f.v)
		}
	}
	if mask&hasDurations != 0 {
		out = binary.AppendUvarint(out, uint64(nonEmpty))
		for i, n := range b.durations {
			if n != 0 {
				out = append(out, byte(i))
				out = binary.AppendUvarint(out, uint64(n))
			}
		}
	}
	if mask&hasErrorTypes != 0 {
		out = binary.AppendUvarint(out, uint64(len(b.errorTypes)))
		for _, e := range b.errorTypes {
			out = binary.AppendUvarint(out, uint64(len(e.typ)))
			out = append(out, e.typ...)
			out = binary.AppendUvarint(out, e.n)
		}
	}
	return out
}

// decodeBucket decodes one bucket at data[off:] after start prev into
// b (reset first) and returns the offset after it. The data is what
// appendBucket wrote in this process: it is never read from outside.
func decodeBucket(data []byte, off int, prev int64, b *bucket) int {
	*b = bucket{errorTypes: b.errorTypes[:0]}
	uv := func() uint64 {
		v, n := binary.Uvarint(data[off:])
		off += n
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(data[off:])
		off += n
		return v
	}
	b.start = prev + sv()
	mask := uv()
	for _, f := range []struct {
		bit uint64
		p   *uint64
	}{{hasInvocations, &b.invocations}, {hasErrors, &b.errors}, {hasThrottles, &b.throttles}, {hasColdStarts, &b.coldStarts}} {
		if mask&f.bit != 0 {
			*f.p = uv()
		}
	}
	if mask&hasDurationSum != 0 {
		b.durationUS = uv()
	}
	if mask&hasLastStart != 0 {
		b.lastStart = b.start*60e9 + sv()
	}
	for _, f := range []struct {
		bit uint64
		p   *uint64
	}{{hasBilled, &b.billedMS}, {hasMBMS, &b.mbMS}, {hasCPU, &b.cpuUS}, {hasProv, &b.provMBMS}} {
		if mask&f.bit != 0 {
			*f.p = uv()
		}
	}
	if mask&hasMaxMemory != 0 {
		b.maxMemoryMB = uint32(uv())
	}
	if mask&hasDurations != 0 {
		for range uv() {
			i := data[off]
			off++
			b.durations[i] = uint32(uv())
		}
	}
	if mask&hasErrorTypes != 0 {
		for range uv() {
			l := int(uv())
			typ := string(data[off : off+l])
			off += l
			b.errorTypes = append(b.errorTypes, errorCount{typ: typ, n: uv()})
		}
	}
	return off
}

// seal moves the buckets of tier t that ended more than openFor[t]
// before now (Unix minutes) into chunks.
func (h *funcHistory) seal(t int, now int64) {
	if !sealing {
		return
	}
	bs := h.open[t]
	limit := now - openFor[t] - tierWidth[t] // buckets starting before it have ended long enough ago
	if len(bs) == 0 || bs[0].start >= limit {
		return
	}
	i := sort.Search(len(bs), func(i int) bool { return bs[i].start >= limit })
	if i == 0 {
		return
	}
	for j := range bs[:i] {
		cs := h.sealed[t]
		if len(cs) == 0 || cs[len(cs)-1].n >= chunkBuckets {
			if len(cs) > 0 {
				// The full chunk's spare capacity is not kept.
				full := &cs[len(cs)-1]
				full.data = append([]byte(nil), full.data...)
			}
			h.sealed[t] = append(cs, chunk{first: bs[j].start, last: bs[j].start})
			cs = h.sealed[t]
		}
		c := &cs[len(cs)-1]
		prev := int64(0)
		if c.n > 0 {
			prev = c.lastAppended
		}
		c.data = appendBucket(c.data, &bs[j], prev)
		c.lastAppended = bs[j].start
		c.first, c.last = min(c.first, bs[j].start), max(c.last, bs[j].start)
		c.n++
	}
	// Copy, so the sealed buckets' array can be collected.
	h.open[t] = append([]bucket(nil), bs[i:]...)
}

// each calls f with every bucket of tier t whose start is in
// [first, end), sealed ones decoded into a scratch bucket (f must not
// keep it), open ones as they are. Buckets of one start may come twice
// (a late count after sealing): callers add them up.
func (h *funcHistory) each(t int, first, end int64, f func(b *bucket)) {
	var scratch bucket
	for k := range h.sealed[t] {
		c := &h.sealed[t][k]
		if c.last < first || c.first >= end {
			continue
		}
		off, prev := 0, int64(0)
		for range c.n {
			off = decodeBucket(c.data, off, prev, &scratch)
			prev = scratch.start
			if scratch.start >= first && scratch.start < end {
				f(&scratch)
			}
		}
	}
	bs := h.open[t]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].start >= first })
	for ; i < len(bs) && bs[i].start < end; i++ {
		f(&bs[i])
	}
}

// dropBefore drops tier t's buckets that start before first: the open
// ones, and the chunks whose every bucket does (a chunk that straddles
// first stays until it does; readers filter by start).
func (h *funcHistory) dropBefore(t int, first int64) {
	if bs := h.open[t]; len(bs) > 0 && bs[0].start < first {
		i := sort.Search(len(bs), func(i int) bool { return bs[i].start >= first })
		h.open[t] = append([]bucket(nil), bs[i:]...)
	}
	cs := h.sealed[t]
	k := 0
	for k < len(cs) && cs[k].last < first {
		k++
	}
	if k > 0 {
		h.sealed[t] = append([]chunk(nil), cs[k:]...)
	}
}

// sealedBytes is the memory the sealed chunks of h hold.
func (h *funcHistory) sealedBytes() int {
	n := 0
	for _, cs := range h.sealed {
		for _, c := range cs {
			n += cap(c.data) + 48
		}
	}
	return n
}

// count is how many buckets tier t holds from floor on.
func (h *funcHistory) count(t int, floor int64) int {
	n := 0
	h.each(t, floor, math.MaxInt64, func(*bucket) { n++ })
	return n
}
