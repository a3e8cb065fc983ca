package fsm

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"nimbus/internal/state"
)

// Command is a Raft command whose application returns an R. Every command
// type of this package implements it for exactly one R (the unexported
// method only ties the two types together), so Apply's result is typed
// by the command it is given.
type Command[R any] interface {
	result() *R
}

// None is the result of a command that returns nothing but its error.
type None struct{}

// Writer commits an encoded command through Raft, on whichever server
// leads, and returns what applying it returned: the value itself, or, when
// a leader applied it for a follower, the value's JSON decoded by the
// registry into the same type. An apply that returned an error returns it
// as the error. *controlplane.Node is the Writer of a server.
type Writer interface {
	Write(ctx context.Context, t CommandType, data []byte) (any, error)
}

// Apply commits c through w and returns its typed result.
func Apply[R any](ctx context.Context, w Writer, c Command[R]) (R, error) {
	var zero R
	e, err := entryOf(c)
	if err != nil {
		return zero, err
	}
	data, err := e.encode(c)
	if err != nil {
		return zero, err
	}
	res, err := w.Write(ctx, e.t, data)
	if err != nil {
		return zero, err
	}
	r, ok := res.(R)
	if !ok {
		return zero, fmt.Errorf("%s returned a %T, not a %T", e.name, res, zero)
	}
	return r, nil
}

// encode serialises a command: one type byte, then its body (JSON, or
// for RecordInvocations its binary encoding: see records.go).
func encode(c any) (CommandType, []byte, error) {
	e, err := entryOf(c)
	if err != nil {
		return 0, nil, err
	}
	data, err := e.encode(c)
	return e.t, data, err
}

// DecodeResult turns the JSON of an applied command's result, as a
// leader sent it to the follower that forwarded the command, back into
// the type that applying it returns locally.
func DecodeResult(t CommandType, b []byte) (any, error) {
	e := registry.byType[t]
	if e == nil {
		return nil, fmt.Errorf("a result of unknown command type %d", t)
	}
	return e.decodeResult(b)
}

// Known reports whether t is a command type this build applies.
func Known(t CommandType) bool { return registry.byType[t] != nil }

func (t CommandType) String() string {
	if e := registry.byType[t]; e != nil {
		return e.name
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// entry is one command as the registry holds it: its number and name, its
// Go type, and the functions that encode it, decode and apply it, and
// decode its result.
type entry struct {
	t            CommandType
	name         string
	goType       reflect.Type
	encode       func(cmd any) ([]byte, error)
	apply        func(s *state.Store, body []byte) (any, error)
	decodeResult func(b []byte) (any, error)
}

// commandRegistry holds every command, by number and by Go type. It is
// built once, when the package initialises, and only read after that.
type commandRegistry struct {
	byType map[CommandType]*entry
	byGo   map[reflect.Type]*entry
}

func newRegistry(entries ...*entry) commandRegistry {
	r := commandRegistry{byType: map[CommandType]*entry{}, byGo: map[reflect.Type]*entry{}}
	for _, e := range entries {
		if r.byType[e.t] != nil || r.byGo[e.goType] != nil {
			panic(fmt.Sprintf("fsm: command %d (%s) registered twice", e.t, e.name))
		}
		r.byType[e.t], r.byGo[e.goType] = e, e
	}
	return r
}

func entryOf(c any) (*entry, error) {
	e := registry.byGo[reflect.TypeOf(c)]
	if e == nil {
		return nil, fmt.Errorf("%T is not a registered command", c)
	}
	return e, nil
}

// def declares command number t: its body is C in JSON, applying it runs
// apply and returns an R. The command's name is C's type name.
func def[C Command[R], R any](t CommandType, apply func(*state.Store, C) (R, error)) *entry {
	return defCodec(t, apply, jsonEncode[C], jsonDecode[C])
}

// defCodec is def with C's own encoding of its body.
func defCodec[C Command[R], R any](t CommandType, apply func(*state.Store, C) (R, error),
	encode func(C) ([]byte, error), decode func([]byte) (C, error)) *entry {
	goType := reflect.TypeFor[C]()
	name := goType.Name()
	return &entry{
		t: t, name: name, goType: goType,
		encode: func(cmd any) ([]byte, error) {
			body, err := encode(cmd.(C))
			if err != nil {
				return nil, fmt.Errorf("encode %s: %w", name, err)
			}
			return append([]byte{byte(t)}, body...), nil
		},
		apply: func(s *state.Store, body []byte) (any, error) {
			c, err := decode(body)
			if err != nil {
				return nil, &decodeError{fmt.Errorf("decode %s: %w", name, err)}
			}
			return apply(s, c)
		},
		decodeResult: func(b []byte) (any, error) {
			var r R
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("decode the result of %s: %w", name, err)
			}
			return r, nil
		},
	}
}

func jsonEncode[C any](c C) ([]byte, error) { return json.Marshal(c) }

func jsonDecode[C any](b []byte) (C, error) {
	var c C
	err := json.Unmarshal(b, &c)
	return c, err
}

// Direct is a Writer that applies each command straight to f, one at a
// time, as a one-server cluster does once the command commits: for the
// tests of packages that write through Raft, without a Raft node.
func Direct(f *FSM) Writer { return &direct{f: f} }

type direct struct {
	mu sync.Mutex
	f  *FSM
}

func (d *direct) Write(_ context.Context, t CommandType, data []byte) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := d.f.ApplyCommand(t, data[1:])
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// decodeError is a log entry whose body does not decode as its command:
// the entry is skipped (and logged), never applied in part.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }
