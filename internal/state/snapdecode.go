package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// decodeSnapshot decodes a snapshot's JSON (the body after its header
// line) into snap, as json.Unmarshal would, but on up to GOMAXPROCS
// goroutines: a restarted server decodes its whole state before it
// serves, and encoding/json alone decodes tens of MB a second. The
// object's sections are found by a scan of the JSON's structure (strings,
// brackets, commas and colons; not the values), and each section, or for
// the large arrays each run of elements, is decoded by encoding/json into
// its own part of snap, so that the result is the same. What follows the
// object is ignored, as json.Decoder.Decode ignores it.
func decodeSnapshot(data []byte, snap *Snapshot) error {
	sections, err := splitObject(data)
	if err != nil {
		return err
	}
	if !distinctKeys(sections) {
		// Two members for one field (which encoding/json matches without
		// regard to case) would be decoded into it at once: not what our
		// encoder writes, but decoded as it would have been.
		return json.Unmarshal(data, snap)
	}
	var tasks []func() error
	for _, s := range sections {
		switch s.key {
		case "functions":
			tasks, err = appendElements(tasks, s.value, &snap.Functions)
		case "records":
			tasks, err = appendElements(tasks, s.value, &snap.Records)
		case "metrics":
			tasks, err = appendElements(tasks, s.value, &snap.Metrics)
		case "audit":
			tasks, err = appendElements(tasks, s.value, &snap.Audit)
		case "versions":
			tasks, err = appendElements(tasks, s.value, &snap.Versions)
		case "queue":
			tasks, err = appendElements(tasks, s.value, &snap.Queue)
		case "dead_letters":
			tasks, err = appendElements(tasks, s.value, &snap.DeadLetters)
		default:
			// A small section: encoding/json finds its field (by the same
			// rules as for the whole object) and sets only that one.
			obj := make([]byte, 0, len(s.rawKey)+len(s.value)+3)
			obj = append(append(append(append(append(obj, '{'), s.rawKey...), ':'), s.value...), '}')
			tasks = append(tasks, func() error { return json.Unmarshal(obj, snap) })
		}
		if err != nil {
			return err
		}
	}
	return runTasks(tasks)
}

// distinctKeys reports whether the sections' keys are ASCII and
// distinct when folded to lower case, so that no two of them name one
// field of Snapshot.
func distinctKeys(sections []section) bool {
	seen := make(map[string]bool, len(sections))
	for _, s := range sections {
		for i := 0; i < len(s.key); i++ {
			if s.key[i] >= utf8.RuneSelf {
				return false
			}
		}
		k := strings.ToLower(s.key)
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// elementsPerTask is how many array elements one task decodes: enough
// that a task outweighs its scheduling, few enough that the tasks of the
// largest sections spread over the processors.
const elementsPerTask = 512

// appendElements adds the tasks that decode the JSON array value into
// *dst, elementsPerTask elements each. A null leaves *dst nil, as
// json.Unmarshal does.
func appendElements[T any](tasks []func() error, value []byte, dst *[]T) ([]func() error, error) {
	elems, isNull, err := splitArray(value)
	if err != nil || isNull {
		return tasks, err
	}
	out := make([]T, len(elems))
	*dst = out
	for from := 0; from < len(elems); from += elementsPerTask {
		to := min(from+elementsPerTask, len(elems))
		tasks = append(tasks, func() error {
			// The run of elements, with the commas between them, as an
			// array of its own: decoded into out[from:to], whose capacity
			// is exactly its length, so encoding/json fills it in place.
			start, end := elems[from][0], elems[to-1][1]
			run := make([]byte, 0, end-start+2)
			run = append(append(append(run, '['), value[start:end]...), ']')
			part := out[from:to:to]
			if err := json.Unmarshal(run, &part); err != nil {
				return err
			}
			if len(part) != to-from {
				return fmt.Errorf("%w: a run of %d elements decoded as %d", errSyntax, to-from, len(part))
			}
			return nil
		})
	}
	return tasks, nil
}

// runTasks runs tasks on up to GOMAXPROCS goroutines and returns the
// first error, if any (after every task has run or been skipped).
func runTasks(tasks []func() error) error {
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	next := make(chan func() error)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				if err := t(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, t := range tasks {
		next <- t
	}
	close(next)
	wg.Wait()
	return first
}

// section is one member of a JSON object: its key (decoded, and as
// written) and its value's bytes.
type section struct {
	key    string
	rawKey []byte
	value  []byte
}

// errSyntax wraps what splitObject and splitArray refuse.
var errSyntax = errors.New("snapshot JSON")

func syntaxError(b []byte, i int, want string) error {
	if i >= len(b) {
		return fmt.Errorf("%w: unexpected end, want %s", errSyntax, want)
	}
	return fmt.Errorf("%w: offset %d: unexpected %q, want %s", errSyntax, i, b[i], want)
}

// splitObject splits the JSON object at the start of b (after any white
// space) into its members.
func splitObject(b []byte) ([]section, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, syntaxError(b, i, "an object")
	}
	var out []section
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return out, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, syntaxError(b, i, "a key")
		}
		end, err := skipString(b, i)
		if err != nil {
			return nil, err
		}
		var key string
		if err := json.Unmarshal(b[i:end], &key); err != nil {
			return nil, err
		}
		s := section{key: key, rawKey: b[i:end]}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, syntaxError(b, i, "a colon")
		}
		i = skipSpace(b, i+1)
		if end, err = skipValue(b, i); err != nil {
			return nil, err
		}
		s.value = b[i:end]
		out = append(out, s)
		i = skipSpace(b, end)
		if i < len(b) && b[i] == '}' {
			return out, nil
		}
		if i >= len(b) || b[i] != ',' {
			return nil, syntaxError(b, i, "a comma or the end of the object")
		}
		i = skipSpace(b, i+1)
	}
}

// splitArray splits the JSON value b, an array or null, into its
// elements: the start and end of each in b. isNull reports a null.
func splitArray(b []byte) (elems [][2]int, isNull bool, err error) {
	if string(b) == "null" {
		return nil, true, nil
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, false, syntaxError(b, 0, "an array")
	}
	elems = [][2]int{}
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return elems, false, nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return nil, false, err
		}
		elems = append(elems, [2]int{i, end})
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ']' {
			return elems, false, nil
		}
		if i >= len(b) || b[i] != ',' {
			return nil, false, syntaxError(b, i, "a comma or the end of the array")
		}
		i = skipSpace(b, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i]
// (a quote).
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte cannot end the string
		case '"':
			return j + 1, nil
		}
	}
	return 0, syntaxError(b, len(b), "the end of a string")
}

// skipValue returns the index after the JSON value that starts at b[i].
// It follows strings and brackets only: what is inside a value is left
// for encoding/json to check when it decodes it.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, syntaxError(b, i, "a value")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, syntaxError(b, len(b), "the end of an object or array")
	case ',', ':', '}', ']':
		return 0, syntaxError(b, i, "a value")
	default: // a number, true, false or null: up to the next delimiter
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		return j, nil
	}
}
