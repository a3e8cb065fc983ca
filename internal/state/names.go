package state

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// nameOrder is the functions' qualified names in order, so that a page
// of functions (FunctionsAfter) costs a binary search and the page, not a
// pass over every function (4-5 ms at 100,000 functions). It is kept
// lazily: a write that adds or removes a function notes it (changed),
// and the first page after merges what changed into a new order
// (current): a copy of the names and a sort of the few added, not a sort
// of them all. Updates of a function that exists change nothing here.
//
// Pages read it without the store's lock (which a Raft snapshot's
// capture holds for a tenth of a second at 100,000 functions, and a
// writer waiting behind it would hold every reader back), so it has a
// lock of its own, and a protocol with the view it is built from:
// writers publish the view with a function added or removed before they
// note the change, and current reads the view under o.mu when it builds
// the order. A build then either sees the function in the view or ends
// before its change is noted, which then goes into changes.
type nameOrder struct {
	mu     sync.Mutex // guards the fields below
	sorted []string   // as of the last current; never changed in place
	built  bool       // sorted is up to date but for changes
	// changes are the names added (true) or removed (false) since
	// sorted was made, the latest for each.
	changes map[string]bool
}

// changed notes that qualified name qn now exists or not, once the view
// that says so is published.
func (o *nameOrder) changed(qn string, exists bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.built {
		return // the next current builds it from the view
	}
	if o.changes == nil {
		o.changes = map[string]bool{}
	}
	o.changes[qn] = exists
	if len(o.changes) > max(1024, len(o.sorted)/4) {
		o.sorted, o.built, o.changes = nil, false, nil // cheaper to sort them all again
	}
}

// reset drops the order: the next current builds it from the view
// published before.
func (o *nameOrder) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sorted, o.built, o.changes = nil, false, nil
}

// current returns the names of the functions in order, building them
// from the view v holds if need be. The slice is shared: callers must
// not change it. A name may be of a function removed since, whose
// view no longer has it: callers skip those.
func (o *nameOrder) current(v *atomic.Pointer[view]) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !o.built:
		names := v.Load().functions.keys()
		slices.Sort(names)
		o.sorted, o.built = names, true
	case len(o.changes) > 0:
		var added []string
		for qn, exists := range o.changes {
			if _, was := slices.BinarySearch(o.sorted, qn); exists && !was {
				added = append(added, qn)
			}
		}
		slices.Sort(added)
		out := make([]string, 0, len(o.sorted)+len(added))
		i := 0
		for _, qn := range o.sorted {
			if exists, ok := o.changes[qn]; ok && !exists {
				continue
			}
			for i < len(added) && strings.Compare(added[i], qn) < 0 {
				out = append(out, added[i])
				i++
			}
			out = append(out, qn)
		}
		out = append(out, added[i:]...)
		o.sorted, o.changes = out, nil
	}
	return o.sorted
}
