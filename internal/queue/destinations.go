package queue

import (
	"encoding/json"
	"strings"
	"time"

	"nimbus/internal/model"
)

// DestinationRecord is the Lambda-style record that an asynchronous
// invocation's destination receives.
func DestinationRecord(o Outcome) json.RawMessage {
	resp := map[string]any{"statusCode": 200, "executedVersion": o.Function.Revision}
	if o.Record.ErrorType != "" {
		resp["functionError"] = "Unhandled"
	}
	var payload any = json.RawMessage("null")
	if len(o.Result) > 0 && json.Valid(o.Result) {
		payload = o.Result
	}
	event := any(json.RawMessage(o.Item.Event))
	if len(o.Item.Event) == 0 {
		event = nil
	}
	b, _ := json.Marshal(map[string]any{
		"version":   "1.0",
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"requestContext": map[string]any{
			"requestId":              o.Item.RequestID,
			"functionArn":            "arn:aws:lambda:local:000000000000:function:" + o.Function.Name,
			"condition":              o.Condition,
			"approximateInvokeCount": o.Item.Attempts,
		},
		"requestPayload":  event,
		"responseContext": resp,
		"responsePayload": payload,
	})
	return b
}

// destinationFor returns the destination for a final outcome ("" when
// none): on_success for Success, on_failure otherwise.
func destinationFor(o Outcome) string {
	d := o.Function.Destinations
	if d == nil || o.Condition == "" {
		return ""
	}
	if o.Condition == "Success" {
		return d.OnSuccess
	}
	return d.OnFailure
}

// functionDestination returns the event to queue for a "function:NAME"
// destination, or nil.
func functionDestination(o Outcome, now time.Time) *model.QueueItem {
	target, ok := strings.CutPrefix(destinationFor(o), "function:")
	if !ok || target == "" {
		return nil
	}
	return &model.QueueItem{
		RequestID:  o.Item.RequestID + "-" + strings.ToLower(o.Condition),
		Namespace:  o.Function.Namespace, // a destination stays in its namespace
		Function:   target,
		Event:      DestinationRecord(o),
		Trigger:    "destination:" + o.Function.Name,
		EnqueuedAt: now,
	}
}

// URLDestination returns the URL a final outcome is to be POSTed to, if
// its destination is one.
func URLDestination(o Outcome) string {
	d := destinationFor(o)
	if strings.HasPrefix(d, "http://") || strings.HasPrefix(d, "https://") {
		return d
	}
	return ""
}
