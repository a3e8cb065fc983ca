package worker

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/internal/waitfor"
)

// TestMain lets the isolating executor re-execute this binary to build a
// sandbox.
func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	os.Exit(m.Run())
}

// testWorker returns a worker over cfg.Executor, by default the process
// executor (no root needed), with a blob store of its own; it is closed
// when the test ends.
func testWorker(t *testing.T, cfg Config) (*Worker, *blob.Store) {
	t.Helper()
	rts, err := python.Discover()
	if err != nil || len(rts) == 0 {
		t.Skipf("no Python runtime: %v", err)
	}
	blobs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ID = "test-worker"
	cfg.DataDir = t.TempDir()
	cfg.Runtimes = rts
	if cfg.Executor == nil {
		cfg.Executor = sandbox.NewProcessExecutor()
	}
	cfg.Blobs = blobs
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, blobs
}

// deploy stores a one-file package and returns the function at revision rev.
func deploy(t *testing.T, blobs *blob.Store, name string, rev int64, src string) model.Function {
	t.Helper()
	return deployFiles(t, blobs, name, rev, map[string]string{"main.py": src})
}

// deployFiles stores a package of files (path -> content) and returns
// the function at revision rev.
func deployFiles(t *testing.T, blobs *blob.Store, name string, rev int64, files map[string]string) model.Function {
	t.Helper()
	digest, err := blobs.Put(zipOf(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return model.Function{
		FunctionConfig: model.FunctionConfig{Name: name, Handler: "main.handler", MemoryMB: 128, Timeout: model.Duration(10 * time.Second)},
		Revision:       rev, CodeSHA256: digest,
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(f, body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const counter = "n = 0\ndef handler(e, c):\n    global n\n    n += 1\n    return n\n"

func invoke(t *testing.T, w *Worker, fn model.Function) Result {
	t.Helper()
	res, err := w.Invoke(context.Background(), Request{RequestID: "r", Function: fn, Payload: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorType != "" {
		t.Fatalf("invoke %s: %s %s\n%s", fn.Name, res.ErrorType, res.Payload, res.Log)
	}
	return res
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, 20*time.Second, what, cond)
}

func TestAWarmInstanceIsReusedWithItsState(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 2})
	fn := deploy(t, blobs, "count", 1, counter)
	first, second := invoke(t, w, fn), invoke(t, w, fn)
	if !first.Cold || second.Cold {
		t.Fatalf("cold flags: first %v, second %v; want true, false", first.Cold, second.Cold)
	}
	if string(second.Payload) != "2" {
		t.Fatalf("module state did not survive: second call returned %s", second.Payload)
	}
	if st := w.Status(); st.WarmInstances != 1 || st.InUse != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestANewRevisionRetiresTheOldInstances(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 2})
	invoke(t, w, deploy(t, blobs, "count", 1, counter))
	res := invoke(t, w, deploy(t, blobs, "count", 2, counter+"# v2\n"))
	if !res.Cold || string(res.Payload) != "1" {
		t.Fatalf("revision 2 ran on an old instance: cold=%v payload=%s", res.Cold, res.Payload)
	}
	if st := w.Status(); st.WarmInstances != 1 {
		t.Fatalf("want only revision 2 warm, status %+v", st)
	}
}

func TestEveryBusySlotMeansNoCapacity(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1})
	slow := deploy(t, blobs, "slow", 1, "import time\ndef handler(e, c):\n    time.sleep(30)\n")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.Invoke(ctx, Request{RequestID: "slow", Function: slow, Payload: []byte("{}")})
	}()
	waitFor(t, "the slow invocation holds the slot", func() bool { return w.Status().InUse == 1 })
	_, err := w.Invoke(context.Background(), Request{RequestID: "r2", Function: deploy(t, blobs, "other", 1, counter), Payload: []byte("{}")})
	if !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("want ErrNoCapacity, got %v", err)
	}
	cancel()
	wg.Wait()
	invoke(t, w, deploy(t, blobs, "other", 1, counter))
}

func TestIdleInstancesRetire(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1, IdleTimeout: 100 * time.Millisecond})
	invoke(t, w, deploy(t, blobs, "count", 1, counter))
	waitFor(t, "the idle instance retires", func() bool { return w.Status().WarmInstances == 0 })
}

func TestRetireDropsAFunctionsInstances(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1})
	fn := deploy(t, blobs, "count", 1, counter)
	invoke(t, w, fn)
	w.Retire("default/count")
	if st := w.Status(); st.WarmInstances != 0 {
		t.Fatalf("status after Retire: %+v", st)
	}
	if res := invoke(t, w, fn); !res.Cold {
		t.Fatal("an invocation after Retire reused a retired instance")
	}
}

func TestACrashedInstanceIsNotReused(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1})
	fn := deploy(t, blobs, "crash", 1, "import os\ndef handler(e, c):\n    if e.get('die'):\n        os._exit(1)\n    return 'ok'\n")
	res, err := w.Invoke(context.Background(), Request{RequestID: "r", Function: fn, Payload: []byte(`{"die": true}`)})
	if err != nil || res.ErrorType != "Sandbox.Crashed" {
		t.Fatalf("want Sandbox.Crashed, got %v %v", res.ErrorType, err)
	}
	if st := w.Status(); st.WarmInstances != 0 {
		t.Fatalf("the crashed instance stayed in the pool: %+v", st)
	}
	if res := invoke(t, w, fn); !res.Cold {
		t.Fatal("the next invocation did not start a fresh instance")
	}
}

func TestMissingCodeIsAnError(t *testing.T) {
	w, _ := testWorker(t, Config{Slots: 1})
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "ghost", Handler: "main.handler", MemoryMB: 128, Timeout: model.Duration(time.Second)},
		Revision: 1, CodeSHA256: blob.Digest([]byte("never stored"))}
	_, err := w.Invoke(context.Background(), Request{RequestID: "r", Function: fn, Payload: []byte("{}")})
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("want blob.ErrNotFound, got %v", err)
	}
	if st := w.Status(); st.InUse != 0 {
		t.Fatalf("the failed start leaked a slot: %+v", st)
	}
}

// The code cache removes the packages no instance uses, beyond the most
// recently used few, once they have been idle long enough; what is in
// use, recent or among the few stays, and a removed package unpacks again
// when invoked.
func TestTheCodeCacheKeepsWhatIsUsedAndPrunesTheRest(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 2, KeepCode: 1, CodeIdle: time.Hour})
	oldest := deploy(t, blobs, "f", 1, counter+"# 1\n")
	older := deploy(t, blobs, "f", 2, counter+"# 2\n")
	current := deploy(t, blobs, "f", 3, counter+"# 3\n")
	for _, fn := range []model.Function{oldest, older, current} {
		invoke(t, w, fn) // each revision retires the one before
	}
	cached := func(fn model.Function) bool {
		_, err := os.Stat(filepath.Join(w.code.dir, fn.CodeSHA256))
		return err == nil
	}
	waitFor(t, "only revision 3's instance is live", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.live) == 1
	})

	if removed := w.pruneCode(time.Now()); len(removed) != 0 {
		t.Fatalf("packages used within CodeIdle were pruned: %v", removed)
	}
	removed := w.pruneCode(time.Now().Add(2 * time.Hour))
	if len(removed) != 1 || removed[0] != oldest.CodeSHA256 {
		t.Fatalf("pruned %v; want only revision 1's package (revision 2's is the one kept, 3's is in use)", removed)
	}
	if cached(oldest) || !cached(older) || !cached(current) {
		t.Fatalf("cached: revision 1 %v, 2 %v, 3 %v; want false, true, true", cached(oldest), cached(older), cached(current))
	}
	// A package pruned is unpacked again when its code runs once more.
	again := deploy(t, blobs, "g", 1, counter+"# 1\n")
	if again.CodeSHA256 != oldest.CodeSHA256 {
		t.Fatal("the same package has another digest")
	}
	if res := invoke(t, w, again); string(res.Payload) != "1" {
		t.Fatalf("the re-unpacked package answered %s", res.Payload)
	}
	if !cached(oldest) {
		t.Fatal("the package was not unpacked again")
	}
	// Leftovers that are not packages (an unpack cut short) are not
	// touched by pruning.
	stray := filepath.Join(w.code.dir, ".x.unpack-1")
	if err := os.Mkdir(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	w.pruneCode(time.Now().Add(4 * time.Hour))
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("pruning touched %s: %v", stray, err)
	}
	if !cached(current) || !cached(oldest) {
		t.Error("pruning removed a package a live instance uses")
	}
}

// What a worker stopped midway leaves in its code cache (an unpack or a
// removal cut short, read-only like every unpacked package) goes when the
// next one starts; packages stay.
func TestCodeCacheLeftoversGoAtStart(t *testing.T) {
	dir := t.TempDir()
	pkg := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		f, _ := zw.Create("sub/main.py")
		io.WriteString(f, counter)
		zw.Close()
		return buf.Bytes()
	}()
	digest := strings.Repeat("ab", 32)
	if err := os.Mkdir(filepath.Join(dir, "."+digest+".trash-2"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{digest, "." + digest + ".unpack-1", "." + digest + ".trash-2/pkg"} {
		if err := codepkg.Unpack(pkg, filepath.Join(dir, name), codepkg.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	c := codeCache{dir: dir}
	if err := c.clearLeftovers(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != digest {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the cache holds %v; want only the package %s", names, digest)
	}
}
