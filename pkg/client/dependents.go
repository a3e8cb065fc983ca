package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// FunctionDependents are what names a function in its namespace and would
// be left pointing at nothing by its removal.
type FunctionDependents struct {
	Schedules     []string `json:"schedules,omitempty"`     // schedules that fire it
	Subscriptions []string `json:"subscriptions,omitempty"` // subscriptions (IDs) to it alone
	Destinations  []string `json:"destinations,omitempty"`  // functions whose destination it is
	Sources       []string `json:"sources,omitempty"`       // event source mappings
	Topics        []string `json:"topics,omitempty"`        // topics it subscribes to
}

// Empty reports whether nothing names the function.
func (d FunctionDependents) Empty() bool {
	return len(d.Schedules) == 0 && len(d.Subscriptions) == 0 && len(d.Destinations) == 0 && len(d.Sources) == 0 && len(d.Topics) == 0
}

// String lists the dependents: "schedule nightly; subscriptions sub-1,
// sub-2; the destination of function f".
func (d FunctionDependents) String() string {
	var parts []string
	list := func(one, many string, names []string) {
		switch len(names) {
		case 0:
		case 1:
			parts = append(parts, one+" "+names[0])
		default:
			parts = append(parts, many+" "+strings.Join(names, ", "))
		}
	}
	list("schedule", "schedules", d.Schedules)
	list("subscription", "subscriptions", d.Subscriptions)
	list("the destination of function", "the destinations of functions", d.Destinations)
	list("event source mapping", "event source mappings", d.Sources)
	list("the subscription to topic", "the subscriptions to topics", d.Topics)
	return strings.Join(parts, "; ")
}

// DeletedFunction is what deleting a function answers: the function, and
// what a forced delete removed with it.
type DeletedFunction struct {
	Function
	Removed *FunctionDependents `json:"removed,omitempty"`
}

// RemoveFunction deletes a function. The server refuses (409) while
// schedules, subscriptions or other functions' destinations name it,
// unless force, which removes them too (listed in Removed).
func (c *Client) RemoveFunction(ctx context.Context, name string, force bool) (DeletedFunction, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out DeletedFunction
	_, err := c.doJSON(ctx, http.MethodDelete, functionPath(name), q, nil, &out)
	return out, err
}
