package state

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"nimbus/internal/model"
)

// decodeRecordsFast fills part from run, a JSON array of len(part)
// invocation records as the snapshot's encoder writes them, and reports
// whether it could. It knows model.Invocation's members and reads them
// without reflection: the records are most of a large snapshot, and
// encoding/json spent about three quarters of a restore's decoding time
// on them. It follows only what our encoder writes (the exact keys, no
// null, strings with the escapes encoding/json writes); on anything else
// it stops, and the caller decodes the run with encoding/json, so that
// what a run decodes to, or the error it gives, is json.Unmarshal's.
func decodeRecordsFast(run []byte, part []model.Invocation) bool {
	return decodeRunFast(run, part, (*recordScanner).record)
}

// decodeRunFast fills part from run, a JSON array of len(part) elements
// and nothing more, each read by elem, and reports whether it could.
func decodeRunFast[T any](run []byte, part []T, elem func(*recordScanner, *T) bool) bool {
	s := recordScanner{b: run}
	if !s.eat('[') {
		return false
	}
	for k := range part {
		if k > 0 && !s.eat(',') {
			return false
		}
		if !elem(&s, &part[k]) {
			return false
		}
	}
	if !s.eat(']') {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// recordScanner reads b from i.
type recordScanner struct {
	b []byte
	i int
}

func (s *recordScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat skips white space and c, if c is next.
func (s *recordScanner) eat(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *recordScanner) record(r *model.Invocation) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		s.space()
		key, ok := s.plainString()
		if !ok || !s.eat(':') {
			return false
		}
		s.space()
		switch string(key) {
		case "id":
			r.ID, ok = s.str()
		case "namespace":
			r.Namespace, ok = s.str()
		case "function":
			r.Function, ok = s.str()
		case "revision":
			r.Revision, ok = s.int64()
		case "trigger":
			r.Trigger, ok = s.str()
		case "status":
			r.Status, ok = s.str()
		case "start":
			r.Start, ok = s.time()
		case "duration_ms":
			r.DurationMS, ok = s.float()
		case "billed_ms":
			r.BilledMS, ok = s.int64()
		case "memory_mb":
			r.MemoryMB, ok = s.int()
		case "max_memory_mb":
			r.MaxMemoryMB, ok = s.int()
		case "init_ms":
			r.InitMS, ok = s.float()
		case "cold_start":
			r.ColdStart, ok = s.boolean()
		case "error_type":
			r.ErrorType, ok = s.str()
		case "result":
			r.Result, ok = s.raw()
		case "log_tail":
			r.LogTail, ok = s.str()
		case "worker":
			r.Worker, ok = s.str()
		case "attempts":
			r.Attempts, ok = s.int()
		case "enqueued_at":
			r.EnqueuedAt, ok = s.time()
		case "destination":
			r.Destination, ok = s.str()
		case "processes_left":
			r.ProcessesLeft, ok = s.int()
		case "cpu_ms":
			r.CPUMS, ok = s.float()
		case "version":
			r.Version, ok = s.int64()
		default:
			return false
		}
		if !ok {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// plainString reads a string without escapes and returns its bytes.
func (s *recordScanner) plainString() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string, with the escapes JSON has.
func (s *recordScanner) str() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i + 1
	j := start
	for ; j < len(s.b) && s.b[j] != '"' && s.b[j] != '\\' && s.b[j] >= 0x20; j++ {
	}
	if j < len(s.b) && s.b[j] == '"' {
		if !utf8.Valid(s.b[start:j]) {
			return "", false // encoding/json would put U+FFFD for the bad bytes
		}
		s.i = j + 1
		return string(s.b[start:j]), true
	}
	out := append([]byte(nil), s.b[start:j]...)
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", false
			}
			s.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return "", false
		}
		switch e := s.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.b, j+2)
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// Only a pair: a half alone is U+FFFD to encoding/json.
				lo, ok := hex4(s.b, j+8)
				if !ok || s.b[j+6] != '\\' || s.b[j+7] != 'u' {
					return "", false
				}
				if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
					return "", false
				}
				j += 6
			}
			out = utf8.AppendRune(out, r)
			j += 4
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number as JSON writes one: an optional minus, 0 or
// digits not starting with 0, then optionally a fraction and an exponent,
// each with at least one digit.
func (s *recordScanner) number() ([]byte, bool) {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(b, i+1); b[i-1] == '.' {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := digits(b, i); j > i {
			i = j
		} else {
			return nil, false
		}
	}
	start := s.i
	s.i = i
	return b[start:i], true
}

// digits returns the index past the decimal digits at b[i:].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func (s *recordScanner) int64() (int64, bool) {
	tok, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	return n, err == nil
}

func (s *recordScanner) int() (int, bool) {
	n, ok := s.int64()
	return int(n), ok && int64(int(n)) == n
}

func (s *recordScanner) float() (float64, bool) {
	tok, ok := s.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	return f, err == nil
}

func (s *recordScanner) boolean() (bool, bool) {
	switch {
	case hasAt(s.b, s.i, "true"):
		s.i += 4
		return true, true
	case hasAt(s.b, s.i, "false"):
		s.i += 5
		return false, true
	}
	return false, false
}

func hasAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// time reads a time as time.Time.UnmarshalJSON does.
func (s *recordScanner) time() (time.Time, bool) {
	start := s.i
	if _, ok := s.plainString(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	return t, t.UnmarshalJSON(s.b[start:s.i]) == nil
}

// raw reads any JSON value and returns a copy of its text, as
// json.RawMessage keeps it.
func (s *recordScanner) raw() (json.RawMessage, bool) {
	start := s.i
	if !s.skipValue() {
		return nil, false
	}
	v := s.b[start:s.i]
	if !json.Valid(v) {
		return nil, false
	}
	return append(json.RawMessage(nil), v...), true
}

// skipValue moves past the value at s.i: a string, an object or an array
// to its end, anything else to the next delimiter. It does not check
// what it skips (raw has json.Valid do that).
func (s *recordScanner) skipValue() bool {
	start, depth := s.i, 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			if !s.skipString() {
				return false
			}
		case c == '{' || c == '[':
			depth++
			s.i++
		case c == '}' || c == ']':
			if depth == 0 {
				return s.i > start // the end of the record the scalar is in
			}
			depth--
			s.i++
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return s.i > start
		default:
			s.i++
			continue
		}
		if depth == 0 {
			return true
		}
	}
	return false
}

// skipString moves past the string at s.i.
func (s *recordScanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			s.i = j + 1
			return true
		}
	}
	return false
}
