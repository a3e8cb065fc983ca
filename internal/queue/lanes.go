package queue

import (
	"strings"

	"nimbus/internal/model"
)

// Fair lanes. The dispatcher offers the free slots to ready events in
// this order, not in plain arrival order, so that one function or one
// namespace flooding the queue does not hold back everyone else's
// events:
//
//  1. schedule fires first, oldest first: a fire belongs to its slot,
//     and a schedule is the one trigger whose lateness users see;
//  2. then the other events round-robin across namespaces, and within a
//     namespace round-robin across its functions, each function's events
//     in arrival order. A round visits the namespaces (and, within one,
//     the functions) in the order of their oldest ready event.
//
// Each pass starts its rounds afresh. A namespace whose event was just
// served has a newer oldest event than one still waiting, so the waiting
// one comes earlier in the next pass: a flood's namespace keeps one
// place in each round (its oldest event is the oldest of all), and every
// other namespace with a ready event reaches the front within a few
// passes, however long the flood.
func fairOrder(ready []*model.QueueItem) []*model.QueueItem {
	out := make([]*model.QueueItem, 0, len(ready))
	var namespaces []string
	functions := map[string][]functionKey{}       // namespace -> its functions, by oldest event
	lanes := map[functionKey][]*model.QueueItem{} // namespace/function -> its events
	for _, q := range ready {                     // in arrival order
		if strings.HasPrefix(q.Trigger, "schedule:") {
			out = append(out, q)
			continue
		}
		ns := model.NamespaceOf(q.Namespace)
		key := functionKey{ns, q.Function}
		if _, seen := functions[ns]; !seen {
			namespaces = append(namespaces, ns)
		}
		if _, seen := lanes[key]; !seen {
			functions[ns] = append(functions[ns], key)
		}
		lanes[key] = append(lanes[key], q)
	}
	perNamespace := make([][]*model.QueueItem, len(namespaces))
	for i, ns := range namespaces {
		fns := make([][]*model.QueueItem, len(functions[ns]))
		for j, key := range functions[ns] {
			fns[j] = lanes[key]
		}
		perNamespace[i] = roundRobin(fns)
	}
	return append(out, roundRobin(perNamespace)...)
}

// roundRobin takes one item of each list in turn, then the next of each,
// until all are taken; a list that runs out leaves the rounds.
func roundRobin[T any](lists [][]T) []T {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]T, 0, n)
	live := append([][]T(nil), lists...)
	for len(live) > 0 {
		kept := live[:0]
		for _, l := range live {
			if len(l) == 0 {
				continue
			}
			out = append(out, l[0])
			if len(l) > 1 {
				kept = append(kept, l[1:])
			}
		}
		live = kept
	}
	return out
}
