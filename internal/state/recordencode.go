package state

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	gotime "time"
	"unicode/utf8"

	"nimbus/internal/model"
)

// recordEncoder writes invocation records as json.Marshal writes them,
// byte for byte, without reflection: a snapshot of a million records
// spent most of its writing time in json.Marshal's. A record it cannot
// write so (a time outside years 0-9999, a number that is not finite, a
// result that is not JSON) is written by json.Marshal, which says why it
// cannot. One encoder is used by one goroutine at a time.
type recordEncoder struct {
	buf     []byte
	scratch bytes.Buffer
}

// encode returns r as json.Marshal(r) would, or its error. The bytes are
// the encoder's until the next call.
func (e *recordEncoder) encode(r *model.Invocation) ([]byte, error) {
	if b, ok := e.appendRecord(e.buf[:0], r); ok {
		e.buf = b
		return b, nil
	}
	return json.Marshal(r)
}

// encodeHistory is encode for a metric history (appendHistory).
func (e *recordEncoder) encodeHistory(h *model.MetricHistory) ([]byte, error) {
	if b, ok := appendHistory(e.buf[:0], h); ok {
		e.buf = b
		return b, nil
	}
	return json.Marshal(h)
}

// appendRecord appends r in model.Invocation's JSON form: its members in
// the order of its fields, those tagged omitempty or omitzero left out
// when empty or zero. It reports false when r has what json.Marshal
// refuses or writes otherwise (b is then of no use).
func (e *recordEncoder) appendRecord(b []byte, r *model.Invocation) ([]byte, bool) {
	good := true
	str := func(key, v string) {
		b = append(b, key...)
		b = appendJSONString(b, v)
	}
	num := func(key string, v int64) {
		b = append(b, key...)
		b = strconv.AppendInt(b, v, 10)
	}
	float := func(key string, v float64) {
		b = append(b, key...)
		if !finite(v) {
			good = false
		}
		b = appendFloat(b, v)
	}
	time := func(key string, v gotime.Time) {
		var ok bool
		if b, ok = appendTime(append(b, key...), v); !ok {
			good = false
		}
	}
	str(`{"id":`, r.ID)
	str(`,"namespace":`, r.Namespace)
	str(`,"function":`, r.Function)
	num(`,"revision":`, r.Revision)
	str(`,"trigger":`, r.Trigger)
	str(`,"status":`, r.Status)
	time(`,"start":`, r.Start)
	float(`,"duration_ms":`, r.DurationMS)
	num(`,"billed_ms":`, r.BilledMS)
	num(`,"memory_mb":`, int64(r.MemoryMB))
	num(`,"max_memory_mb":`, int64(r.MaxMemoryMB))
	if r.InitMS != 0 {
		float(`,"init_ms":`, r.InitMS)
	}
	b = append(b, `,"cold_start":`...)
	b = strconv.AppendBool(b, r.ColdStart)
	if r.ErrorType != "" {
		str(`,"error_type":`, r.ErrorType)
	}
	if len(r.Result) > 0 {
		b = append(b, `,"result":`...)
		var ok bool
		if b, ok = e.appendRaw(b, r.Result); !ok {
			good = false
		}
	}
	if r.LogTail != "" {
		str(`,"log_tail":`, r.LogTail)
	}
	if r.Worker != "" {
		str(`,"worker":`, r.Worker)
	}
	if r.Attempts != 0 {
		num(`,"attempts":`, int64(r.Attempts))
	}
	if !r.EnqueuedAt.IsZero() {
		time(`,"enqueued_at":`, r.EnqueuedAt)
	}
	if r.Destination != "" {
		str(`,"destination":`, r.Destination)
	}
	if r.ProcessesLeft != 0 {
		num(`,"processes_left":`, int64(r.ProcessesLeft))
	}
	if r.CPUMS != 0 {
		float(`,"cpu_ms":`, r.CPUMS)
	}
	if r.Version != 0 {
		num(`,"version":`, r.Version)
	}
	return append(b, '}'), good
}

// appendTime appends t quoted as time.Time.MarshalJSON writes it,
// reporting false where that fails (a year outside 0-9999, a zone of a
// day or more).
func appendTime(b []byte, t gotime.Time) ([]byte, bool) {
	b, err := t.AppendText(append(b, '"'))
	return append(b, '"'), err == nil
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

// appendFloat appends f, finite, as encoding/json writes a float64: the
// shortest decimal that reads back as f, in exponent form below 1e-6 and
// from 1e21 on (with a one-digit negative exponent as e-7, not e-07).
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// appendRaw appends a raw JSON value as encoding/json writes a
// json.RawMessage: checked, without white space between its tokens, and
// with <, >, &, U+2028 and U+2029 escaped.
func (e *recordEncoder) appendRaw(b []byte, raw json.RawMessage) ([]byte, bool) {
	if bytes.ContainsAny(raw, " \t\n\r") {
		e.scratch.Reset()
		if json.Compact(&e.scratch, raw) != nil {
			return b, false
		}
		raw = e.scratch.Bytes()
	} else if !json.Valid(raw) {
		return b, false
	}
	if bytes.ContainsAny(raw, "<>&\u2028\u2029") {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, raw)
		return append(b, esc.Bytes()...), true
	}
	return append(b, raw...), true
}

// appendJSONString appends s quoted as encoding/json quotes a string
// (with HTML escaping, its default): ", \ and control characters escaped
// (\b \f \n \r \t by name, others as \u00XX), <, > and & as \u003c,
// \u003e and \u0026, U+2028 and U+2029 escaped, and each byte of bad
// UTF-8 replaced by \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
