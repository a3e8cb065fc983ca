package state

import (
	"strconv"
	gotime "time"

	"nimbus/internal/model"
)

// The metric histories are the snapshot's second largest section (a
// third of its bytes with 100,000 functions invoked): like the records,
// they are written and read without reflection, with the same rule: what
// these do not follow is left to encoding/json, so that the bytes written
// and the values read are exactly encoding/json's.

// appendHistory appends h as json.Marshal writes it, reporting false when
// it has what json.Marshal refuses or writes otherwise.
func appendHistory(b []byte, h *model.MetricHistory) ([]byte, bool) {
	good := true
	b = append(b, `{"namespace":`...)
	b = appendJSONString(b, h.Namespace)
	b = append(b, `,"function":`...)
	b = appendJSONString(b, h.Function)
	minutes := func(key string, ms []model.MetricMinute) {
		b = append(b, key...)
		if ms == nil {
			b = append(b, "null"...)
			return
		}
		b = append(b, '[')
		for i := range ms {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendMinute(b, &ms[i]); !ok {
				good = false
			}
		}
		b = append(b, ']')
	}
	minutes(`,"minutes":`, h.Minutes)
	if len(h.Hours) > 0 {
		minutes(`,"hours":`, h.Hours)
	}
	if len(h.Days) > 0 {
		minutes(`,"days":`, h.Days)
	}
	if h.Total != nil {
		b = append(b, `,"total":`...)
		var ok bool
		if b, ok = appendMinute(b, h.Total); !ok {
			good = false
		}
	}
	return append(b, '}'), good
}

func appendMinute(b []byte, m *model.MetricMinute) ([]byte, bool) {
	good := true
	num := func(key string, v int64) {
		b = append(b, key...)
		b = strconv.AppendInt(b, v, 10)
	}
	time := func(key string, v gotime.Time) {
		var ok bool
		if b, ok = appendTime(append(b, key...), v); !ok {
			good = false
		}
	}
	time(`{"minute":`, m.Minute)
	num(`,"invocations":`, m.Invocations)
	num(`,"errors":`, m.Errors)
	if len(m.ErrorTypes) > 0 {
		b = append(b, `,"error_types":[`...)
		for i, e := range m.ErrorTypes {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendJSONString(b, e.Type)
			num(`,"count":`, e.Count)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	num(`,"throttles":`, m.Throttles)
	num(`,"cold_starts":`, m.ColdStarts)
	b = append(b, `,"duration_sum_ms":`...)
	if !finite(m.DurationSumMS) {
		good = false
	}
	b = appendFloat(b, m.DurationSumMS)
	if len(m.Durations) > 0 {
		b = append(b, `,"durations":[`...)
		for i, d := range m.Durations {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, ']')
	}
	if !m.LastStart.IsZero() {
		time(`,"last_start":`, m.LastStart)
	}
	for _, f := range []struct {
		key string
		v   int64
	}{{`,"billed_ms":`, m.BilledMS}, {`,"mb_ms":`, m.MBMS}, {`,"cpu_us":`, m.CPUUS}, {`,"max_memory_mb":`, m.MaxMemoryMB}, {`,"provisioned_mb_ms":`, m.ProvisionedMBMS}} {
		if f.v != 0 {
			num(f.key, f.v)
		}
	}
	return append(b, '}'), good
}

// decodeHistoriesFast fills part from run, a JSON array of len(part)
// metric histories, and reports whether it could (see
// decodeRecordsFast).
func decodeHistoriesFast(run []byte, part []model.MetricHistory) bool {
	return decodeRunFast(run, part, (*recordScanner).history)
}

// object reads a JSON object's members, calling member with each key
// (the scanner at its value) until it reports false. A key that comes
// twice stops it: encoding/json would merge the two values into one.
func (s *recordScanner) object(member func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	var seen [20][]byte
	n := 0
	for {
		s.space()
		key, ok := s.plainString()
		if !ok || !s.eat(':') || n == len(seen) {
			return false
		}
		for _, k := range seen[:n] {
			if string(k) == string(key) {
				return false
			}
		}
		seen[n] = key
		n++
		s.space()
		if !member(key) {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// null reads a null, if one is next.
func (s *recordScanner) null() bool {
	if hasAt(s.b, s.i, "null") {
		s.i += 4
		return true
	}
	return false
}

// array reads a JSON array, calling elem with the scanner at each
// element. A null is not an array here (encoding/json would leave the
// slice as it was).
func (s *recordScanner) array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		s.space()
		if !elem() {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat(']')
	}
}

func (s *recordScanner) history(h *model.MetricHistory) bool {
	minutes := func(dst *[]model.MetricMinute) bool {
		if s.null() {
			*dst = nil
			return true
		}
		*dst = []model.MetricMinute{} // encoding/json's for [], as for a full one
		return s.array(func() bool {
			*dst = append(*dst, model.MetricMinute{})
			return s.minute(&(*dst)[len(*dst)-1])
		})
	}
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "namespace":
			h.Namespace, ok = s.str()
		case "function":
			h.Function, ok = s.str()
		case "minutes":
			ok = minutes(&h.Minutes)
		case "hours":
			ok = minutes(&h.Hours)
		case "days":
			ok = minutes(&h.Days)
		case "total":
			if ok = s.null(); ok {
				h.Total = nil
			} else {
				h.Total = &model.MetricMinute{}
				ok = s.minute(h.Total)
			}
		}
		return ok
	})
}

func (s *recordScanner) minute(m *model.MetricMinute) bool {
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "minute":
			m.Minute, ok = s.time()
		case "invocations":
			m.Invocations, ok = s.int64()
		case "errors":
			m.Errors, ok = s.int64()
		case "error_types":
			if s.null() {
				m.ErrorTypes, ok = nil, true
				break
			}
			m.ErrorTypes = []model.ErrorTypeCount{}
			ok = s.array(func() bool {
				var e model.ErrorTypeCount
				good := s.object(func(key []byte) bool {
					var ok bool
					switch string(key) {
					case "type":
						e.Type, ok = s.str()
					case "count":
						e.Count, ok = s.int64()
					}
					return ok
				})
				m.ErrorTypes = append(m.ErrorTypes, e)
				return good
			})
		case "throttles":
			m.Throttles, ok = s.int64()
		case "cold_starts":
			m.ColdStarts, ok = s.int64()
		case "duration_sum_ms":
			m.DurationSumMS, ok = s.float()
		case "durations":
			if s.null() {
				m.Durations, ok = nil, true
				break
			}
			m.Durations = []int64{}
			ok = s.array(func() bool {
				d, ok := s.int64()
				m.Durations = append(m.Durations, d)
				return ok
			})
		case "last_start":
			m.LastStart, ok = s.time()
		case "billed_ms":
			m.BilledMS, ok = s.int64()
		case "mb_ms":
			m.MBMS, ok = s.int64()
		case "cpu_us":
			m.CPUUS, ok = s.int64()
		case "max_memory_mb":
			m.MaxMemoryMB, ok = s.int64()
		case "provisioned_mb_ms":
			m.ProvisionedMBMS, ok = s.int64()
		}
		return ok
	})
}
