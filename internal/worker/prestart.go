package worker

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// prestartPool keeps, per runtime in use, a few instances started ahead
// in complete sandboxes that await their function (SOCK-style pooled
// sandboxes): a cold start then costs attaching the code and importing
// the handler. Functions with dependencies have pools of their own, per
// dependency set: those sandboxes have the layer mounted from the start
// and have imported its top-level modules while waiting, so a cold start
// does not pay for importing them. Each pre-started instance serves one
// function only and is never handed to another: nothing of one function
// is ever seen by another.
type prestartPool struct {
	w    *Worker
	size int // the least each stock keeps
	// most is the most a stock grows to when cold starts are expected:
	// functions deployed and not started yet, and the cold starts of the
	// last demandWindow (see target).
	most int

	// fills bounds the sandboxes being started at once (one per core).
	fills chan struct{}

	mu      sync.Mutex
	pending map[string]map[string]time.Time // per stock key: announced functions not started yet
	recent  map[string][]time.Time          // per stock key: when instances were taken
	ready   map[string][]*python.Instance   // by stock key
	wanted  map[string]stock                // stocks to keep full
	filling map[string]int                  // starts in progress per stock
	taken   map[string]time.Time            // when a dependency set's stock was last wanted
	closed  bool
}

// stock is what a pool's instances start with: a runtime and, for the
// functions of one dependency set, its layer, the modules to import and
// the functions' own environment variables, which the modules see as
// they would in a fresh start (a module may read them as it is
// imported): functions share a stock only with the same variables.
type stock struct {
	rt      python.Runtime
	digests []string // the layers' digests, in order; none for none
	layers  []sandbox.Mount
	sysPath []string // where the layers' modules are, as instances see them
	preload []string
	env     map[string]string
}

func (s stock) key() string {
	if len(s.digests) == 0 {
		return s.rt.Name
	}
	keys := make([]string, 0, len(s.env))
	for k := range s.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, s.env[k])
	}
	return fmt.Sprintf("%s|%s|%x", s.rt.Name, strings.Join(s.digests, "+"), h.Sum(nil)[:8])
}

// fillPatience is the longest a fill waits for the cold starts under
// way to end, polling every fillPoll; quietAfter is how long after the
// last cold start ended the worker counts as quiet (a burst's cold
// starts come a few milliseconds apart).
const (
	fillPatience = 2 * time.Second
	fillPoll     = 5 * time.Millisecond
	quietAfter   = 50 * time.Millisecond
)

// maxStock bounds one stock, however many cold starts are expected.
const maxStock = 32

// demandWindow is how long a cold start counts toward the stock it was
// taken from, and announceWindow how long a deployed function that has
// not started counts as an expected cold start.
const (
	demandWindow   = 10 * time.Second
	announceWindow = 5 * time.Minute
)

// maxDepsStocks bounds the dependency sets stocked at once; the one
// wanted least recently goes first. Their instances hold the imported
// modules (megabytes each), and the memory budget does not count them.
const maxDepsStocks = 8

func newPrestartPool(w *Worker, size, most int) *prestartPool {
	p := &prestartPool{w: w, size: size, ready: map[string][]*python.Instance{},
		wanted: map[string]stock{}, filling: map[string]int{}, taken: map[string]time.Time{},
		pending: map[string]map[string]time.Time{}, recent: map[string][]time.Time{},
		fills: make(chan struct{}, max(1, runtime.NumCPU()))}
	if _, ok := w.cfg.Executor.(sandbox.CodeAttacher); !ok {
		p.size = 0
	}
	// A waiting sandbox holds about 4 MB; a sixteenth of the memory
	// budget at 16 MiB each bounds what expected cold starts add.
	if most <= 0 {
		most = maxStock
	}
	p.most = max(p.size, min(most, int(w.cfg.InstanceMemory/16/(16<<20))))
	if p.size > 0 && len(w.cfg.Runtimes) > 0 {
		// Stock the default (newest) runtime from the start.
		p.want(stock{rt: w.cfg.Runtimes[0]})
	}
	return p
}

// restockDelay is the longest a taken instance's replacement waits for
// the cold start it serves: starting a sandbox takes tens of
// milliseconds of CPU, which the cold start's import and first
// invocation would otherwise share.
const restockDelay = 50 * time.Millisecond

// take returns a pre-started instance of st, if one is ready and the
// function's /tmp size is the pool's (the default), and a restock
// function: call it when the cold start it serves has ended (it restocks
// by itself after restockDelay, and only once).
func (p *prestartPool) take(st stock, tmpMB int, fn string) (*python.Instance, func()) {
	if p.size == 0 || (tmpMB != 0 && tmpMB != sandbox.DefaultTmpMB) {
		return nil, func() {}
	}
	var once sync.Once
	restock := func() { once.Do(func() { p.want(st) }) }
	t := time.AfterFunc(restockDelay, restock)
	k := st.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	delete(p.pending[k], fn)
	p.recent[k] = append(trimBefore(p.recent[k], now.Add(-demandWindow)), now)
	for list := p.ready[k]; len(list) > 0; list = p.ready[k] {
		inst := list[len(list)-1]
		p.ready[k] = list[:len(list)-1]
		if inst.Alive() {
			return inst, func() { t.Stop(); restock() }
		}
		go inst.Close()
	}
	t.Stop()
	go restock() // none ready: stock up at once
	return nil, func() {}
}

// announce says function fn (a deployed revision) is expected to start
// with st's instances: its stock grows by one until it starts, or for
// announceWindow.
func (p *prestartPool) announce(st stock, fn string) {
	if p.size == 0 {
		return
	}
	k := st.key()
	p.mu.Lock()
	if p.pending[k] == nil {
		p.pending[k] = map[string]time.Time{}
	}
	p.pending[k][fn] = time.Now()
	p.mu.Unlock()
	p.want(st)
}

// targetLocked is how many instances stock k keeps now: its size, plus
// one per announced function not started yet and per cold start of the
// last demandWindow, at most p.most.
func (p *prestartPool) targetLocked(k string, now time.Time) int {
	for fn, at := range p.pending[k] {
		if now.Sub(at) > announceWindow {
			delete(p.pending[k], fn)
		}
	}
	p.recent[k] = trimBefore(p.recent[k], now.Add(-demandWindow))
	return min(p.most, p.size+len(p.pending[k])+len(p.recent[k]))
}

// trimBefore drops the times before t from ts (ascending).
func trimBefore(ts []time.Time, t time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(t) {
		i++
	}
	return ts[i:]
}

// want marks st as in use and starts instances until its stock is full;
// a dependency set beyond maxDepsStocks retires the least recently
// wanted one.
func (p *prestartPool) want(st stock) {
	if p.size == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	k := st.key()
	if len(st.digests) > 0 {
		p.taken[k] = time.Now()
		for len(p.taken) > maxDepsStocks {
			oldest := ""
			for o, at := range p.taken {
				if oldest == "" || at.Before(p.taken[oldest]) {
					oldest = o
				}
			}
			p.retireLocked(oldest)
		}
	}
	p.wanted[k] = st
	for n, target := len(p.ready[k])+p.filling[k], p.targetLocked(k, time.Now()); n < target; n++ {
		p.filling[k]++
		p.w.closing.Add(1)
		go p.fill(st)
	}
}

// retireLocked stops stocking k and closes its ready instances.
func (p *prestartPool) retireLocked(k string) {
	for _, inst := range p.ready[k] {
		go inst.Close()
	}
	delete(p.ready, k)
	delete(p.wanted, k)
	delete(p.taken, k)
	delete(p.pending, k)
	delete(p.recent, k)
}

func (p *prestartPool) fill(st stock) {
	defer p.w.closing.Done()
	p.fills <- struct{}{}
	// Building a sandbox takes the kernel's mount locks and tens of
	// milliseconds of CPU: it waits while cold starts are under way,
	// which it would slow many times over what it saves them (a burst
	// of twenty cold starts took a second, against 60 ms without).
	for t0 := time.Now(); !p.w.quiet() && time.Since(t0) < fillPatience; {
		time.Sleep(fillPoll)
	}
	inst, err := python.Prestart(python.PrestartConfig{
		Runtime: st.rt, Bootstrap: p.w.bootstrap, Executor: p.w.cfg.Executor, LogLimit: p.w.cfg.LogLimit,
		Layers: st.layers, SysPath: st.sysPath, Preload: st.preload, Env: st.env,
	})
	<-p.fills
	k := st.key()
	p.mu.Lock()
	p.filling[k]--
	_, stillWanted := p.wanted[k]
	if err != nil || p.closed || !stillWanted {
		p.mu.Unlock()
		if err != nil {
			// Not retried here (no spinning on a broken runtime): the
			// next take restocks.
			p.w.cfg.Log.Warn("pre-starting an instance", "runtime", st.rt.Name, "layers", st.digests, "err", err)
		} else {
			inst.Close()
		}
		return
	}
	p.ready[k] = append(p.ready[k], inst)
	p.mu.Unlock()
}

// layersInUse adds to inUse the dependency layers the stocked instances
// have mounted, which the code cache must keep.
func (p *prestartPool) layersInUse(inUse map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.wanted {
		for _, d := range st.digests {
			inUse[d] = true
		}
	}
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

// topLevelModules lists what a layer directory (a pip --target tree)
// offers to import at its top: packages (directories with Python files,
// namespace packages too), modules and extension modules; not metadata,
// scripts or bundled libraries.
func topLevelModules(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || // private modules: their packages import them
			n == "__pycache__" || n == "bin" || strings.HasSuffix(n, ".dist-info") || strings.HasSuffix(n, ".data") ||
			strings.HasSuffix(n, ".egg-info") || strings.HasSuffix(n, ".libs"):
		case e.IsDir():
			if isIdentifier(n) && hasPython(filepath.Join(dir, n)) {
				seen[n] = true
			}
		case strings.HasSuffix(n, ".py"):
			if m := strings.TrimSuffix(n, ".py"); isIdentifier(m) {
				seen[m] = true
			}
		case strings.HasSuffix(n, ".so"):
			if m, _, _ := strings.Cut(n, "."); isIdentifier(m) {
				seen[m] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func hasPython(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".py") || strings.HasSuffix(n, ".so") {
			return true
		}
	}
	return false
}

func isIdentifier(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// shadows reports whether the function's code directory has a top-level
// module of one of the names: a sandbox that imported the layer's module
// of that name first must not serve it (the function's own comes first
// on sys.path).
func shadows(codeDir string, names []string) bool {
	for _, n := range names {
		for _, p := range []string{n + ".py", n} {
			if _, err := os.Stat(filepath.Join(codeDir, p)); err == nil {
				return true
			}
		}
		if m, _ := filepath.Glob(filepath.Join(codeDir, n+".*.so")); len(m) > 0 {
			return true
		}
	}
	return false
}
