package placement

import (
	"errors"
	"fmt"
	"sync"

	"nimbus/internal/model"
)

// ErrConcurrencyLimit is returned when an invocation would exceed its
// function's reserved concurrency or its namespace's limit.
var ErrConcurrencyLimit = errors.New("concurrency limit reached")

// Limits are the namespace-wide concurrency settings an invocation is
// subject to, as the state store has them.
type Limits struct {
	Namespace int // the namespace's limit; 0 for none
	Reserved  int // reserved concurrency summed over the namespace's functions
}

// Concurrency counts the invocations running through this server and
// admits new ones within their limits, as Lambda does: a function with
// reserved concurrency R runs at most R at once, from a share nobody
// else may use; the namespace's other functions share what is left of
// its limit. The synchronous gateway and the asynchronous dispatcher
// (which runs on the leader) admit through the same Concurrency.
type Concurrency struct {
	mu         sync.Mutex
	byFunction map[string]int // reserved functions, by qualified name
	unreserved map[string]int // the rest, by namespace
}

// NewConcurrency returns an empty counter.
func NewConcurrency() *Concurrency {
	return &Concurrency{byFunction: map[string]int{}, unreserved: map[string]int{}}
}

// Acquire admits one invocation of fn, or says which limit refuses it.
// The caller must call release once the invocation ends.
func (c *Concurrency) Acquire(fn model.Function, l Limits) (release func(), err error) {
	ns := model.NamespaceOf(fn.Namespace)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := fn.ReservedConcurrency; r != nil {
		qn := fn.QualifiedName()
		if c.byFunction[qn] >= *r {
			return nil, fmt.Errorf("%w: function %s has a reserved concurrency of %d, all in use", ErrConcurrencyLimit, fn.Name, *r)
		}
		c.byFunction[qn]++
		return c.releaser(func() { c.byFunction[qn]-- }), nil
	}
	if l.Namespace > 0 {
		if pool := l.Namespace - l.Reserved; c.unreserved[ns] >= pool {
			return nil, fmt.Errorf("%w: namespace %s has a concurrency limit of %d (%d reserved by functions), all in use", ErrConcurrencyLimit, ns, l.Namespace, l.Reserved)
		}
	}
	c.unreserved[ns]++
	return c.releaser(func() { c.unreserved[ns]-- }), nil
}

// releaser makes dec safe to call once, under the lock.
func (c *Concurrency) releaser(dec func()) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			dec()
			c.mu.Unlock()
		})
	}
}
