package model

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"nimbus/internal/model/modeltest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json (only for a new type or an added field)")

// stored lists every type this package stores, by its golden file's name.
func stored() map[string]any {
	return map[string]any{
		"function":            &Function{},
		"invocation":          &Invocation{},
		"dead_letter":         &DeadLetter{},
		"log_entry":           &LogEntry{},
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
		"source":              &Source{},
		"topic":               &Topic{},
		"function_url":        &FunctionURL{},
		"test_event":          &TestEvent{},
		"metric_history":      &MetricHistory{},
		"throttle_count":      &ThrottleCount{},
		"price_table":         &PriceTable{},
		"budget":              &Budget{},
		"build":               &Build{},
		"layer":               &Layer{},
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
			modeltest.Fill(v, name)
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
