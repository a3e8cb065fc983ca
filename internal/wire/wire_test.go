package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/model/modeltest"
	"nimbus/pkg/client"
)

// toWire fills a model value and returns its wire form.
func toWire[M, C any](conv func(M) C) func(*testing.T) any {
	return func(*testing.T) any {
		var m M
		modeltest.Fill(&m, "m")
		return conv(m)
	}
}

// both is toWire for a pair with a way back, which must give back the
// model value it started from.
func both[M, C any](to func(M) C, back func(C) M) func(*testing.T) any {
	return func(t *testing.T) any {
		var m M
		modeltest.Fill(&m, "m")
		c := to(m)
		if b := back(c); !reflect.DeepEqual(m, b) {
			t.Errorf("model -> wire -> model changed the value:\n%+v\n%+v", m, b)
		}
		return c
	}
}

// Every conversion to the wire sets every field of the wire type (a field
// forgotten in a hand-written conversion fails), and the ones with a way
// back give back the model value they started from.
func TestConversionsKeepEveryField(t *testing.T) {
	cases := []struct {
		name string
		conv func(*testing.T) any
	}{
		{"function", toWire(Function)},
		{"function config", both(FunctionConfig, ModelFunctionConfig)},
		{"schedule", both(Schedule, ModelSchedule)},
		{"namespace", both(Namespace, ModelNamespace)},
		{"subscription", both(Subscription, ModelSubscription)},
		{"invocation", toWire(Invocation)},
		{"dead letter", toWire(DeadLetter)},
		{"log entry", toWire(LogEntry)},
		{"audit entry", toWire(AuditEntry)},
		{"dependents", toWire(Dependents)},
		{"user", toWire(User)},
		{"topic", toWire(Topic)},
		{"test event", toWire(TestEvent)},
		{"metric point", toWire(MetricPoint)},
		{"topic subscriber", both(TopicSubscriber, ModelTopicSubscriber)},
		{"function url", both(func(m model.FunctionURL) client.FunctionURL { return FunctionURL(m, "http://set.by/the/answer/") }, ModelFunctionURL)},
		{"key", toWire(func(m model.Key) client.Key {
			k := Key(m)
			k.Secret = "set by the answer that creates the key"
			return k
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if zero := zeroFields(reflect.ValueOf(tc.conv(t)), ""); len(zero) > 0 {
				t.Errorf("the conversion leaves %s unset", strings.Join(zero, ", "))
			}
		})
	}
}

// zeroFields lists the fields of v, nested ones included, left zero.
func zeroFields(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return zeroFields(v.Elem(), path)
	case reflect.Struct:
		if v.Type().PkgPath() == "time" {
			break
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// The original problem: renaming a JSON field of the API changed the Raft
// log and snapshot format. Now a request decoded with a renamed wire field
// (here client.Schedule's "expression" renamed "cron", built by
// reflection as a future pkg/client would declare it) is stored exactly
// as before.
func TestRenamingAWireFieldLeavesTheStoredFormat(t *testing.T) {
	wireType := reflect.TypeOf(client.Schedule{})
	fields := make([]reflect.StructField, wireType.NumField())
	for i := range fields {
		fields[i] = wireType.Field(i)
		if fields[i].Name == "Expression" {
			fields[i].Tag = `json:"cron"`
		}
	}
	renamed := reflect.New(reflect.StructOf(fields))
	body := `{"name":"nightly","function":"report","cron":"cron(0 3 * * ? *)"}`
	if err := json.Unmarshal([]byte(body), renamed.Interface()); err != nil {
		t.Fatal(err)
	}
	stored := ModelSchedule(renamed.Elem().Convert(wireType).Interface().(client.Schedule))
	b, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"nightly","namespace":"","function":"report","expression":"cron(0 3 * * ? *)","created_at":"0001-01-01T00:00:00Z","fires":0,"missed":0}`
	if string(b) != want {
		t.Errorf("stored\n%s\nwant\n%s", b, want)
	}
}
