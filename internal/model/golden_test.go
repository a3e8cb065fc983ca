package model

import (
	"bytes"
	"encoding/json"
	"flag"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json (only for a new type or an added field)")

// stored lists every type this package stores, by its golden file's name.
func stored() map[string]any {
	return map[string]any{
		"function":            &Function{},
		"invocation":          &Invocation{},
		"dead_letter":         &DeadLetter{},
		"queue_item":          &QueueItem{},
		"retention":           &Retention{},
		"schedule":            &Schedule{},
		"namespace":           &Namespace{},
		"subscription":        &Subscription{},
		"audit_entry":         &AuditEntry{},
		"function_dependents": &FunctionDependents{},
		"key":                 &Key{},
		"user":                &User{},
		"session":             &Session{},
		"server_info":         &ServerInfo{},
	}
}

// TestGolden encodes each stored type with every field set and compares
// with testdata: a renamed or removed JSON field (which would stop old
// Raft logs and snapshots from decoding) fails it. The golden files were
// written from the types that pkg/client and internal/state stored before
// this package existed.
func TestGolden(t *testing.T) {
	for name, v := range stored() {
		t.Run(name, func(t *testing.T) {
			fill(reflect.ValueOf(v).Elem(), name)
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimSpace(want), got) {
				t.Errorf("the stored encoding of %s changed (a field renamed or removed?)\ngot:\n%s\nwant:\n%s", name, got, want)
			}
			// And the stored form decodes without losing a field.
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(want, back); err != nil {
				t.Fatal(err)
			}
			if again, _ := json.MarshalIndent(back, "", "  "); !bytes.Equal(again, got) {
				t.Errorf("%s does not decode back to what was encoded:\n%s", name, again)
			}
		})
	}
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// fill sets every field of v to a non-zero value that depends only on the
// field's path and kind, so that two declarations of the same stored type
// produce the same JSON.
func fill(v reflect.Value, path string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	n := int64(h.Sum32()%1000) + 1
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).Add(time.Duration(n) * time.Second)))
		return
	case v.Type() == rawType:
		v.SetBytes([]byte(`{"path":"` + path + `"}`))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.String:
		v.SetString(path)
	case reflect.Int, reflect.Int64:
		v.SetInt(n)
	case reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Float64:
		v.SetFloat(float64(n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), path+"[0]")
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, path+".key")
		fill(e, path+".value")
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		panic("fill: no value for " + v.Type().String() + " at " + path)
	}
}
