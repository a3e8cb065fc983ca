package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"

	"nimbus/internal/model"
)

// decodeSnapshot decodes a snapshot's JSON (the body after its header
// line), read from r, into snap, as json.Unmarshal would, but on up to
// GOMAXPROCS goroutines and without holding the whole body: a restarted
// server, or a follower installing the leader's snapshot, decodes a state
// that may be gigabytes of JSON, and encoding/json alone decodes tens of
// MB a second. The object's members are found by a scan of the JSON's
// structure (strings, brackets, commas and colons; not the values) as it
// is read; the large arrays are cut into runs of elementsPerTask elements,
// each decoded by encoding/json (the records by decodeRecordsFast) on a
// goroutine of its own as soon as it is read, and every other member is
// decoded by encoding/json as it is read.
// What follows the object is not read, as json.Decoder.Decode ignores it.
//
// One difference from json.Unmarshal: a member that names a field an
// earlier member named already (encoding/json matches names without
// regard to case) is refused, where encoding/json would let the later
// one win. Our encoder never writes one, and this decoder has handed the
// first one's records on before it sees the second.
//
// With records not nil, the records are not kept in snap.Records but
// passed to it, a run at a time, in the snapshot's order (one call at a
// time): each run can be dropped once it is stored, where the whole
// section decoded at once would be held beside the store it fills (a
// 304-byte model.Invocation and its strings a record).
func decodeSnapshot(r *bufio.Reader, snap *Snapshot, records func([]model.Invocation)) error {
	in := &jsonReader{r: r}
	pool := newTaskPool()
	var finish []func()
	err := func() error {
		c, err := in.skipSpace()
		if err != nil || c != '{' {
			return in.syntaxError(err, "an object")
		}
		in.discard(1)
		if c, err = in.skipSpace(); err == nil && c == '}' {
			return nil
		}
		seen := map[string]bool{}
		for {
			if err != nil || c != '"' {
				return in.syntaxError(err, "a key")
			}
			rawKey, err := in.appendValue(nil)
			if err != nil {
				return err
			}
			var key string
			if err := json.Unmarshal(rawKey, &key); err != nil {
				return err
			}
			if c, err := in.skipSpace(); err != nil || c != ':' {
				return in.syntaxError(err, "a colon")
			}
			in.discard(1)
			field := snapshotField(key)
			if seen[field] {
				return fmt.Errorf("%w: a second member %q for the field %q", errSyntax, key, field)
			}
			seen[field] = true
			if c, err = in.skipSpace(); err != nil {
				return in.syntaxError(err, "a value")
			}
			var done func()
			switch {
			case c != '[': // null, or not an array: encoding/json says which
				err = decodeMember(in, rawKey, snap)
			case field == "functions":
				done, err = collectArray(in, pool, &snap.Functions)
			case field == "records" && records != nil:
				err = sinkArray(in, pool, records)
			case field == "records":
				done, err = collectArray(in, pool, &snap.Records)
			case field == "metrics":
				done, err = collectArray(in, pool, &snap.Metrics)
			case field == "audit":
				done, err = collectArray(in, pool, &snap.Audit)
			case field == "versions":
				done, err = collectArray(in, pool, &snap.Versions)
			case field == "queue":
				done, err = collectArray(in, pool, &snap.Queue)
			case field == "dead_letters":
				done, err = collectArray(in, pool, &snap.DeadLetters)
			default:
				err = decodeMember(in, rawKey, snap)
			}
			if err != nil {
				return err
			}
			if done != nil {
				finish = append(finish, done)
			}
			c, err = in.skipSpace()
			if err == nil && c == '}' {
				return nil
			}
			if err != nil || c != ',' {
				return in.syntaxError(err, "a comma or the end of the object")
			}
			in.discard(1)
			c, err = in.skipSpace()
		}
	}()
	if werr := pool.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for _, f := range finish {
		f()
	}
	return nil
}

// decodeMember reads the member's value and decodes it with encoding/json,
// which finds its field of snap (by the same rules as for the whole
// object) and sets only that one.
func decodeMember(in *jsonReader, rawKey []byte, snap *Snapshot) error {
	obj := append(append([]byte{'{'}, rawKey...), ':')
	obj, err := in.appendValue(obj)
	if err != nil {
		return err
	}
	return json.Unmarshal(append(obj, '}'), snap)
}

// snapshotFields are the JSON names of Snapshot's fields.
var snapshotFields = func() []string {
	var names []string
	t := reflect.TypeFor[Snapshot]()
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			names = append(names, name)
		}
	}
	return names
}()

// snapshotField is the JSON name of the field of Snapshot that encoding/json
// decodes the member key into (an exact match, else one equal under
// Unicode case folding), or key itself if none.
func snapshotField(key string) string {
	for _, name := range snapshotFields {
		if name == key {
			return name
		}
	}
	for _, name := range snapshotFields {
		if strings.EqualFold(name, key) {
			return name
		}
	}
	return key
}

// elementsPerTask is how many array elements one task decodes: enough
// that a task outweighs its scheduling, few enough that the tasks of the
// largest sections spread over the processors.
const elementsPerTask = 512

// collectArray reads the JSON array at in, a run of elements at a time,
// and has pool decode each run. The returned finish, called once every
// task has run without error, sets *dst to the elements in order.
func collectArray[T any](in *jsonReader, pool *taskPool, dst *[]T) (finish func(), err error) {
	var (
		mu    sync.Mutex
		parts [][]T
	)
	err = in.readRuns(func(run []byte, n int) {
		mu.Lock()
		i := len(parts)
		parts = append(parts, nil)
		mu.Unlock()
		pool.run(func() error {
			part, err := decodeRun[T](run, n)
			mu.Lock()
			parts[i] = part
			mu.Unlock()
			return err
		})
	})
	return func() {
		total := 0
		for _, p := range parts {
			total += len(p)
		}
		out := make([]T, 0, total) // not nil for an empty array, as encoding/json decodes one
		for _, p := range parts {
			out = append(out, p...)
		}
		*dst = out
	}, err
}

// sinkArray reads the JSON array at in, a run of elements at a time, has
// pool decode each run into a slice of its own and passes it to sink:
// one run at a time, in the array's order, whatever order the tasks run
// in. A run that fails to decode is not passed.
func sinkArray[T any](in *jsonReader, pool *taskPool, sink func([]T)) error {
	// Each run waits for the one before it to be passed. The pool takes
	// the tasks in order, so a run waits only for runs taken before it,
	// which wait for no later one.
	prev := make(chan struct{})
	close(prev)
	return in.readRuns(func(run []byte, n int) {
		wait, done := prev, make(chan struct{})
		prev = done
		pool.run(func() error {
			defer close(done)
			part, err := decodeRun[T](run, n)
			<-wait
			if err == nil {
				sink(part)
			}
			return err
		})
	})
}

// decodeRun decodes run, a JSON array of n elements, into a slice of its
// own.
func decodeRun[T any](run []byte, n int) ([]T, error) {
	// Its capacity exactly the length, encoding/json fills it in place.
	part := make([]T, n)
	switch p := any(part).(type) { // (clear: what a fast decoder filled before it stopped)
	case []model.Invocation:
		if decodeRecordsFast(run, p) {
			return part, nil
		}
		clear(p)
	case []model.MetricHistory:
		if decodeHistoriesFast(run, p) {
			return part, nil
		}
		clear(p)
	}
	if err := json.Unmarshal(run, &part); err != nil {
		return nil, err
	}
	if len(part) != n {
		return nil, fmt.Errorf("%w: a run of %d elements decoded as %d", errSyntax, n, len(part))
	}
	return part, nil
}

// taskPool runs tasks on GOMAXPROCS goroutines; run waits until one takes
// the task, so a reader that feeds it is never far ahead of the decoding.
type taskPool struct {
	next  chan func() error
	wg    sync.WaitGroup
	mu    sync.Mutex
	first error
}

func newTaskPool() *taskPool {
	p := &taskPool{next: make(chan func() error)}
	for range runtime.GOMAXPROCS(0) {
		p.wg.Go(func() {
			for t := range p.next {
				if err := t(); err != nil {
					p.mu.Lock()
					if p.first == nil {
						p.first = err
					}
					p.mu.Unlock()
				}
			}
		})
	}
	return p
}

func (p *taskPool) run(t func() error) { p.next <- t }

// wait waits for every task given to run and returns the first error.
func (p *taskPool) wait() error {
	close(p.next)
	p.wg.Wait()
	return p.first
}

// errSyntax wraps what the scan of a snapshot's structure refuses.
var errSyntax = errors.New("snapshot JSON")

// jsonReader scans JSON values from a buffered reader, counting the
// bytes it has consumed (for error messages).
type jsonReader struct {
	r   *bufio.Reader
	off int64
}

func (in *jsonReader) discard(n int) {
	in.r.Discard(n)
	in.off += int64(n)
}

// syntaxError says what the scan found at its offset instead of want; err
// is the read's error, if that is what stopped it.
func (in *jsonReader) syntaxError(err error, want string) error {
	if err != nil {
		if errors.Is(err, errEnd) {
			return fmt.Errorf("%w: unexpected end, want %s", errSyntax, want)
		}
		return fmt.Errorf("%w: offset %d: %w", errSyntax, in.off, err)
	}
	c, _ := in.r.Peek(1)
	return fmt.Errorf("%w: offset %d: unexpected %q, want %s", errSyntax, in.off, c, want)
}

// errEnd is the end of the input.
var errEnd = errors.New("end of input")

// skipSpace consumes white space and returns the next byte, unconsumed.
func (in *jsonReader) skipSpace() (byte, error) {
	for {
		c, err := in.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errEnd
			}
			return 0, err
		}
		if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			in.r.UnreadByte()
			return c, nil
		}
		in.off++
	}
}

// chunk returns what the reader has buffered, reading more if it has
// nothing (errEnd at the end of the input).
func (in *jsonReader) chunk() ([]byte, error) {
	if _, err := in.r.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEnd
		}
		return nil, err
	}
	b, _ := in.r.Peek(in.r.Buffered())
	return b, nil
}

// appendValue consumes the JSON value that starts at the next non-space
// byte and appends its bytes to dst. It follows strings and brackets
// only: what is inside a value is left for encoding/json to check when
// it decodes it.
func (in *jsonReader) appendValue(dst []byte) ([]byte, error) {
	c, err := in.skipSpace()
	if err != nil {
		return dst, in.syntaxError(err, "a value")
	}
	switch c {
	case ',', ':', '}', ']':
		return dst, in.syntaxError(nil, "a value")
	case '"', '{', '[':
		depth, inString, escaped := 0, false, false
		for {
			b, err := in.chunk()
			if err != nil {
				return dst, in.syntaxError(err, "the end of a string, object or array")
			}
			for i, c := range b {
				switch {
				case inString:
					if escaped {
						escaped = false
					} else if c == '\\' {
						escaped = true
					} else if c == '"' {
						inString = false
						if depth == 0 {
							dst = append(dst, b[:i+1]...)
							in.discard(i + 1)
							return dst, nil
						}
					}
				case c == '"':
					inString = true
				case c == '{' || c == '[':
					depth++
				case c == '}' || c == ']':
					depth--
					if depth == 0 {
						dst = append(dst, b[:i+1]...)
						in.discard(i + 1)
						return dst, nil
					}
				}
			}
			dst = append(dst, b...)
			in.discard(len(b))
		}
	default: // a number, true, false or null: up to the next delimiter
		for {
			b, err := in.chunk()
			if errors.Is(err, errEnd) {
				return dst, nil
			}
			if err != nil {
				return dst, in.syntaxError(err, "a value")
			}
			for i, c := range b {
				if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\t' || c == '\r' {
					dst = append(dst, b[:i]...)
					in.discard(i)
					return dst, nil
				}
			}
			dst = append(dst, b...)
			in.discard(len(b))
		}
	}
}

// readRuns consumes the JSON array at the next byte (a '[') and calls
// each with every run of up to elementsPerTask of its elements, with the
// commas between them, as an array of its own (a buffer each run owns),
// and its count.
func (in *jsonReader) readRuns(each func(run []byte, n int)) error {
	in.discard(1) // '['
	c, err := in.skipSpace()
	if err == nil && c == ']' {
		in.discard(1)
		return nil
	}
	run, n := []byte{'['}, 0
	for {
		if run, err = in.appendValue(run); err != nil {
			return err
		}
		n++
		c, err := in.skipSpace()
		if err != nil || c != ',' && c != ']' {
			return in.syntaxError(err, "a comma or the end of the array")
		}
		in.discard(1)
		if c == ']' {
			each(append(run, ']'), n)
			return nil
		}
		if n < elementsPerTask {
			run = append(run, ',')
			continue
		}
		each(append(run, ']'), n)
		next := make([]byte, 1, len(run)+len(run)/4)
		next[0] = '['
		run, n = next, 0
	}
}
