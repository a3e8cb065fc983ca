package worker

import (
	"sync"
	"time"

	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// prestartPool keeps, per runtime in use, a few instances started ahead
// in complete sandboxes that await their function (SOCK-style pooled
// sandboxes): a cold start then costs attaching the code and importing
// the handler. Each pre-started instance serves one function only and
// is never handed to another.
type prestartPool struct {
	w    *Worker
	size int

	mu      sync.Mutex
	ready   map[string][]*python.Instance // by runtime name
	wanted  map[string]python.Runtime     // runtimes to keep stocked
	filling map[string]int                // starts in progress per runtime
	closed  bool
}

func newPrestartPool(w *Worker, size int) *prestartPool {
	p := &prestartPool{w: w, size: size, ready: map[string][]*python.Instance{},
		wanted: map[string]python.Runtime{}, filling: map[string]int{}}
	if _, ok := w.cfg.Executor.(sandbox.CodeAttacher); !ok {
		p.size = 0
	}
	if p.size > 0 && len(w.cfg.Runtimes) > 0 {
		// Stock the default (newest) runtime from the start.
		p.want(w.cfg.Runtimes[0])
	}
	return p
}

// restockDelay is the longest a taken instance's replacement waits for
// the cold start it serves: starting a sandbox takes tens of
// milliseconds of CPU, which the cold start's import and first
// invocation would otherwise share.
const restockDelay = 50 * time.Millisecond

// take returns a pre-started instance for rt, if one is ready and the
// function's /tmp size is the pool's (the default), and a restock
// function: call it when the cold start it serves has ended (it restocks
// by itself after restockDelay, and only once).
func (p *prestartPool) take(rt python.Runtime, tmpMB int) (*python.Instance, func()) {
	if p.size == 0 || (tmpMB != 0 && tmpMB != sandbox.DefaultTmpMB) {
		return nil, func() {}
	}
	var once sync.Once
	restock := func() { once.Do(func() { p.want(rt) }) }
	t := time.AfterFunc(restockDelay, restock)
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.ready[rt.Name]; len(list) > 0; list = p.ready[rt.Name] {
		inst := list[len(list)-1]
		p.ready[rt.Name] = list[:len(list)-1]
		if inst.Alive() {
			return inst, func() { t.Stop(); restock() }
		}
		go inst.Close()
	}
	t.Stop()
	go restock() // none ready: stock up at once
	return nil, func() {}
}

// want marks rt as in use and starts instances until its stock is full.
func (p *prestartPool) want(rt python.Runtime) {
	if p.size == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.wanted[rt.Name] = rt
	for n := len(p.ready[rt.Name]) + p.filling[rt.Name]; n < p.size; n++ {
		p.filling[rt.Name]++
		p.w.closing.Add(1)
		go p.fill(rt)
	}
}

func (p *prestartPool) fill(rt python.Runtime) {
	defer p.w.closing.Done()
	inst, err := python.Prestart(python.PrestartConfig{
		Runtime: rt, Bootstrap: p.w.bootstrap, Executor: p.w.cfg.Executor, LogLimit: p.w.cfg.LogLimit,
	})
	p.mu.Lock()
	p.filling[rt.Name]--
	if err != nil || p.closed {
		p.mu.Unlock()
		if err != nil {
			// Not retried here (no spinning on a broken runtime): the
			// next take restocks.
			p.w.cfg.Log.Warn("pre-starting an instance", "runtime", rt.Name, "err", err)
		} else {
			inst.Close()
		}
		return
	}
	p.ready[rt.Name] = append(p.ready[rt.Name], inst)
	p.mu.Unlock()
}

// count is the number of pre-started instances ready now.
func (p *prestartPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.ready {
		n += len(l)
	}
	return n
}

// close stops every pre-started instance.
func (p *prestartPool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*python.Instance
	for _, l := range p.ready {
		all = append(all, l...)
	}
	p.ready = map[string][]*python.Instance{}
	p.mu.Unlock()
	for _, inst := range all {
		inst.Close()
	}
}
