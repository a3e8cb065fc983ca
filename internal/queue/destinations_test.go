package queue

import (
	"encoding/json"
	"testing"
	"time"
)

func TestURLDestination(t *testing.T) {
	fn := func(onSuccess, onFailure string) function {
		return newFunction("f", withDestinations(onSuccess, onFailure))
	}
	cases := []struct {
		name string
		o    Outcome
		want string
	}{
		{"a success goes to an http on_success", outcomeOf(fn("http://h/ok", "http://h/bad"), "r", "Success"), "http://h/ok"},
		{"a success goes to an https on_success", outcomeOf(fn("https://h/ok", ""), "r", "Success"), "https://h/ok"},
		{"retries exhausted go to on_failure", outcomeOf(fn("http://h/ok", "https://h/bad"), "r", retriesExhausted), "https://h/bad"},
		{"an event too old goes to on_failure", outcomeOf(fn("", "https://h/bad"), "r", eventAgeExceeded), "https://h/bad"},
		{"an attempt to be retried goes nowhere", outcomeOf(fn("http://h/ok", "http://h/bad"), "r", ""), ""},
		{"a function destination is not a URL", outcomeOf(fn("function:g", "function:g"), "r", "Success"), ""},
		{"a success without on_success goes nowhere", outcomeOf(fn("", "http://h/bad"), "r", "Success"), ""},
		{"a function without destinations goes nowhere", outcomeOf(newFunction("f"), "r", "Success"), ""},
		{"another scheme is not a URL destination", outcomeOf(fn("ftp://h/ok", ""), "r", "Success"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := URLDestination(tc.o); got != tc.want {
				t.Fatalf("URLDestination = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestFunctionDestination(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fn := func(onSuccess, onFailure string) function {
		return newFunction("src", withDestinations(onSuccess, onFailure))
	}
	cases := []struct {
		name   string
		o      Outcome
		wantID string // "": no event
		target string
	}{
		{"a success queues an event for on_success", outcomeOf(fn("function:ok", "function:bad"), "r", "Success"), "r-success", "ok"},
		{"retries exhausted queue an event for on_failure", outcomeOf(fn("function:ok", "function:bad"), "r", retriesExhausted), "r-retriesexhausted", "bad"},
		{"an event too old queues an event for on_failure", outcomeOf(fn("", "function:bad"), "r", eventAgeExceeded), "r-eventageexceeded", "bad"},
		{"an attempt to be retried queues nothing", outcomeOf(fn("function:ok", "function:bad"), "r", ""), "", ""},
		{"a URL destination queues nothing", outcomeOf(fn("https://h/ok", ""), "r", "Success"), "", ""},
		{"a function destination without a name queues nothing", outcomeOf(fn("function:", ""), "r", "Success"), "", ""},
		{"a function without destinations queues nothing", outcomeOf(newFunction("src"), "r", "Success"), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := functionDestination(tc.o, now)
			if tc.wantID == "" {
				if got != nil {
					t.Fatalf("functionDestination = %+v; want none", got)
				}
				return
			}
			if got == nil {
				t.Fatal("functionDestination = nil")
			}
			if got.RequestID != tc.wantID || got.Function != tc.target || got.Namespace != testNamespace ||
				got.Trigger != "destination:src" || !got.EnqueuedAt.Equal(now) {
				t.Fatalf("functionDestination = %+v", got)
			}
			if got.Attempts != 0 || got.Epoch != 0 || !got.LeaseUntil.IsZero() {
				t.Fatalf("the destination event is not fresh: %+v", got)
			}
			if d := decodeDestinationRecord(t, got.Event); d.RequestContext.RequestID != "r" || d.RequestContext.Condition != tc.o.Condition {
				t.Fatalf("the destination event is not the outcome's destination record: %s", got.Event)
			}
		})
	}
}

// destinationRecord is DestinationRecord's output as a destination reads
// it.
type destinationRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext map[string]any  `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

func decodeDestinationRecord(t *testing.T, b []byte) destinationRecord {
	t.Helper()
	var d destinationRecord
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("a destination record that does not decode: %v: %s", err, b)
	}
	return d
}

func TestDestinationRecord(t *testing.T) {
	fn := newFunction("f")
	fn.Revision = 7
	withResult := func(o Outcome, result string, errorType string) Outcome {
		o.Result, o.Record.ErrorType = json.RawMessage(result), errorType
		return o
	}
	withEvent := func(o Outcome, event string, attempts int) Outcome {
		o.Item.Event, o.Item.Attempts = json.RawMessage(event), attempts
		return o
	}
	cases := []struct {
		name          string
		o             Outcome
		response      string // responsePayload
		request       string // requestPayload
		functionError any    // responseContext.functionError (nil: absent)
		invokeCount   int
	}{
		{"a success carries its result and event", withResult(outcomeOf(fn, "r", "Success"), `{"sum":3}`, ""), `{"sum":3}`, `{"n":1}`, nil, 1},
		{"a failure says its function failed", withEvent(withResult(outcomeOf(fn, "r", retriesExhausted), `{"errorType":"KeyError"}`, "KeyError"), `[1,2]`, 3),
			`{"errorType":"KeyError"}`, `[1,2]`, "Unhandled", 3},
		{"a result that is not JSON becomes null", withResult(outcomeOf(fn, "r", "Success"), `not json`, ""), `null`, `{"n":1}`, nil, 1},
		{"no result is null", withResult(outcomeOf(fn, "r", eventAgeExceeded), ``, ""), `null`, `{"n":1}`, nil, 1},
		{"no event is null", withEvent(outcomeOf(fn, "r", eventAgeExceeded), ``, 0), `null`, `null`, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			d := decodeDestinationRecord(t, DestinationRecord(tc.o))
			if d.Version != "1.0" || d.RequestContext.RequestID != "r" || d.RequestContext.Condition != tc.o.Condition ||
				d.RequestContext.FunctionArn != "arn:aws:lambda:local:000000000000:function:f" ||
				d.RequestContext.ApproximateInvokeCount != tc.invokeCount {
				t.Fatalf("record %+v", d)
			}
			if ts, err := time.Parse(time.RFC3339Nano, d.Timestamp); err != nil || ts.Before(before) {
				t.Fatalf("timestamp %q (%v)", d.Timestamp, err)
			}
			if string(d.ResponsePayload) != tc.response || string(d.RequestPayload) != tc.request {
				t.Fatalf("responsePayload %s, requestPayload %s; want %s, %s", d.ResponsePayload, d.RequestPayload, tc.response, tc.request)
			}
			rc := d.ResponseContext
			if rc["statusCode"] != float64(200) || rc["executedVersion"] != float64(7) || rc["functionError"] != tc.functionError {
				t.Fatalf("responseContext %v", rc)
			}
		})
	}
}
