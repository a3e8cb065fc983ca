package state

import (
	"slices"
	"strings"
	"sync"

	"nimbus/internal/model"
)

// nameOrder is the functions' qualified names in order, so that a page
// of functions (FunctionsAfter) costs a binary search and the page, not a
// pass over every function under the store's lock (4-5 ms at 100,000
// functions, during which no write applies). It is kept lazily: a write
// that adds or removes a function notes it (changed, with Store.mu held
// for writing), and the first page after merges what changed into a new
// order (current, with Store.mu held for reading): a copy of the names
// and a sort of the few added, not a sort of them all. Updates of a
// function that exists change nothing here.
type nameOrder struct {
	mu     sync.Mutex // guards the fields below among readers of the store
	sorted []string   // as of the last current; never changed in place
	built  bool       // sorted is up to date but for changes
	// changes are the names added (true) or removed (false) since
	// sorted was made, the latest for each.
	changes map[string]bool
}

// changed notes that qualified name qn now exists or not. Needs Store.mu
// held for writing.
func (o *nameOrder) changed(qn string, exists bool) {
	if !o.built {
		return // the next current builds it from the functions
	}
	if o.changes == nil {
		o.changes = map[string]bool{}
	}
	o.changes[qn] = exists
	if len(o.changes) > max(1024, len(o.sorted)/4) {
		o.reset() // cheaper to sort them all again
	}
}

// reset drops the order: the next current builds it from the functions.
// Needs Store.mu held for writing (or the store not yet shared).
func (o *nameOrder) reset() {
	o.sorted, o.built, o.changes = nil, false, nil
}

// current returns the names of fns (the store's functions) in order.
// The slice is shared: callers must not change it. Needs Store.mu held
// for reading at least.
func (o *nameOrder) current(fns map[string]*model.Function) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !o.built:
		names := make([]string, 0, len(fns))
		for qn := range fns {
			names = append(names, qn)
		}
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
