package state

import "time"

// Provisioned instances are metered as Lambda bills provisioned
// concurrency: for the time a function's configuration asks for them,
// instances × memory size, whether they serve or not (their invocations
// are metered as any others, on top). Apply meters them between
// consecutive record batches at the configuration in force at the
// earlier batch, so every server meters alike (the batch times are in
// the log, never the clock); every server's recorder commits a batch at
// least once a minute (its retention tick, even with no records), so a
// change is metered within a minute of when it was made.

// meterProvisioned meters the provisioned instances from the previous
// batch time to now, then samples the functions that ask for them now.
// Needs s.mu held for writing.
func (s *Store) meterProvisionedLocked(now time.Time) {
	x := &s.metrics
	to := now.UnixNano()
	if from := x.provisionedAt; from != 0 && to > from {
		for _, p := range x.provisioned {
			if p.Instances <= 0 || p.MemoryMB <= 0 {
				continue
			}
			hs := x.histories(p.Namespace, p.Function)
			perMS := uint64(p.Instances) * uint64(p.MemoryMB)
			// Minute by minute, so each tier's buckets get their share.
			for at := from; at < to; {
				m := unixMinute(time.Unix(0, at))
				end := min((m+1)*int64(time.Minute), to)
				// Whole milliseconds since the epoch at each end, so that
				// the chunks add up to the interval exactly.
				ms := uint64(end/int64(time.Millisecond) - at/int64(time.Millisecond))
				for _, h := range hs {
					for t := range tiers {
						if start := floorTo(m, tierWidth[t]); x.inWindow(t, start) {
							h.bucket(t, start).provMBMS += perMS * ms
						}
					}
				}
				hs[0].total.provMBMS += perMS * ms
				at = end
				if end < to && to-end > int64(x.keep[tierDay])*int64(time.Minute) {
					at = to - int64(x.keep[tierDay])*int64(time.Minute) // beyond every window: skip ahead
				}
			}
		}
	}
	if to > x.provisionedAt {
		x.provisioned = s.view.Load().provisioned
		x.provisionedAt = to
	}
}
