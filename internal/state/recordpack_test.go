package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

// Every field of a record reads back from the store as it was added,
// whether it is one the stored record keeps as a field or one it packs:
// a field added to model.Invocation and forgotten by the packing fails
// here. Each field is set to a value of its own through reflection.
func TestEveryFieldOfARecordReadsBack(t *testing.T) {
	var full model.Invocation
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(t0.Add(time.Duration(i) * time.Second)))
		case f.Type() == reflect.TypeOf(json.RawMessage{}):
			f.Set(reflect.ValueOf(json.RawMessage(`{"field":"` + name + `"}`)))
		case f.Kind() == reflect.String:
			f.SetString("the " + name)
		case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
			f.SetInt(int64(1000 + i))
		case f.Kind() == reflect.Float64:
			f.SetFloat(float64(i) + 0.125)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("field %s of kind %s: set it here, and pack it (recordpack.go)", name, f.Kind())
		}
	}
	offset := full
	offset.ID = "with an offset"
	offset.EnqueuedAt = time.Date(2026, 12, 7, 18, 0, 0, 123, time.FixedZone("", 3600))
	bare := model.Invocation{ID: "only an id", Namespace: model.DefaultNamespace, Start: t0}

	s := New()
	s.AddRecords([]model.Invocation{full, offset, bare}, nil, model.DefaultRetention(), t0.Add(time.Hour))
	for _, want := range []model.Invocation{full, offset, bare} {
		got, err := s.Record(want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want.ID == offset.ID {
			if !got.EnqueuedAt.Equal(want.EnqueuedAt) || got.EnqueuedAt.Format(time.RFC3339Nano) != want.EnqueuedAt.Format(time.RFC3339Nano) {
				t.Errorf("enqueued at %s, want %s", got.EnqueuedAt.Format(time.RFC3339Nano), want.EnqueuedAt.Format(time.RFC3339Nano))
			}
			got.EnqueuedAt = want.EnqueuedAt
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read back\n%+v\nwant\n%+v", got, want)
		}
	}
}
