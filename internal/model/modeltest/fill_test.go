package modeltest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

type inner struct {
	Name  string
	Count uint64
}

type sample struct {
	Text    string
	N       int
	Big     int64
	Ratio   float64
	On      bool
	At      time.Time
	Raw     json.RawMessage
	Ptr     *inner
	List    []inner
	ByName  map[string]int
	Nested  inner
	Another inner
}

// Fill leaves no field zero, and a value depends only on its path: two
// fills agree, and two fields of one type at different paths differ.
func TestFillSetsEveryFieldByItsPath(t *testing.T) {
	var a, b sample
	Fill(&a, "sample")
	Fill(&b, "sample")
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two fills differ:\n%+v\n%+v", a, b)
	}
	var zeros []string
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		if v.IsZero() {
			zeros = append(zeros, path)
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			if v.Type() == reflect.TypeOf(time.Time{}) {
				return
			}
			for i := range v.NumField() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		case reflect.Pointer:
			walk(v.Elem(), path)
		case reflect.Slice:
			if v.Type() != reflect.TypeOf(json.RawMessage(nil)) {
				walk(v.Index(0), path+"[0]")
			}
		}
	}
	walk(reflect.ValueOf(a), "sample")
	if len(zeros) > 0 {
		t.Fatalf("left zero: %v", zeros)
	}
	if a.Nested == a.Another || a.Text == a.Nested.Name {
		t.Fatalf("fields of one type at different paths got the same values: %+v %+v", a.Nested, a.Another)
	}
	if !json.Valid(a.Raw) {
		t.Fatalf("the raw message is not JSON: %s", a.Raw)
	}
	var other sample
	Fill(&other, "other")
	if other.Text == a.Text {
		t.Fatalf("another root path gave the same values")
	}
}
