package worker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/sandbox"
)

// A function with a dependency layer imports from it: on sys.path right
// after its own code, at /opt/python in a sandbox; its own modules win
// over the layer's.
func TestAFunctionImportsFromItsDependencyLayer(t *testing.T) {
	executors := map[string]sandbox.Executor{"as a process": nil}
	if e := sandbox.TestIsolatedExecutor(t); e != nil {
		executors["in a sandbox"] = e
	}
	for name, exec := range executors {
		t.Run(name, func(t *testing.T) {
			w, blobs := testWorker(t, Config{Slots: 1, Executor: exec})
			layer := zipOf(t, map[string]string{"lib.py": "WHO = 'layer'\n", "shadowed.py": "WHO = 'layer'\n"})
			digest, err := blobs.Put(layer)
			if err != nil {
				t.Fatal(err)
			}
			// The function's own shadowed.py comes first.
			fn := deployFiles(t, blobs, "f", 1, map[string]string{"main.py": "import lib, shadowed, sys\ndef handler(e, c):\n    return [lib.WHO, shadowed.WHO, lib.__file__, sys.path[1]]\n", "shadowed.py": "WHO = 'code'\n"})
			fn.Deps = &model.DepLayer{SHA256: digest, Size: int64(len(layer))}
			res := invoke(t, w, fn)
			got := string(res.Payload)
			if !strings.Contains(got, `"layer", "code"`) {
				t.Fatalf("handler answered %s: want lib from the layer and shadowed from the code", got)
			}
			if exec != nil && !strings.Contains(got, `"/opt/python/lib.py", "/opt/python"`) {
				t.Errorf("in a sandbox the layer is at /opt/python: %s", got)
			}
		})
	}
}

// tampered answers every digest with other bytes.
type tampered struct{}

func (tampered) Get(context.Context, string) ([]byte, error) {
	return []byte("not what was asked for"), nil
}

// A package (a layer, or code) whose bytes do not match its digest is
// not unpacked, whatever the source said.
func TestTheCodeCacheRefusesBytesThatDoNotMatchTheirDigest(t *testing.T) {
	c := codeCache{dir: t.TempDir(), blobs: tampered{}, busy: map[string]*sync.Mutex{}, used: map[string]time.Time{}}
	_, err := c.dirFor(context.Background(), blob.Digest([]byte("the real layer")), codepkg.LayerLimits())
	if !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("err %v, want blob.ErrCorrupt", err)
	}
}

// A function with dependencies, announced by a deploy, finds a sandbox
// stocked for its dependency set: the layer's modules were imported
// before the invocation arrived, seeing the function's own environment
// variables; a function whose code has a module of the same name gets a
// fresh sandbox that imports its own.
func TestASandboxOfTheDependencySetImportedItsModulesAhead(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 2, Executor: sandboxOrSkip(t), Prestart: 1})
	layer := zipOf(t, map[string]string{
		"heavy/__init__.py":            "import os, time\nLOADED_AT = time.time()\nSEEN = os.environ.get('GREETING')\n",
		"heavy-1.0.dist-info/METADATA": "Name: heavy\n",
	})
	digest, err := blobs.Put(layer)
	if err != nil {
		t.Fatal(err)
	}
	handler := "import heavy\ndef handler(e, c):\n    return [heavy.LOADED_AT, heavy.SEEN, heavy.__file__]\n"
	fn := deploy(t, blobs, "f", 1, handler)
	fn.Runtime, fn.Env = w.cfg.Runtimes[0].Name, map[string]string{"GREETING": "hello"}
	fn.Deps = &model.DepLayer{SHA256: digest, Size: int64(len(layer))}
	w.Prefetch(fn)
	waitFor(t, "the dependency set's sandbox is stocked", func() bool { return w.prestarted.count() >= 2 })
	// A stocked sandbox is ready once its imports have run.
	asked := float64(time.Now().UnixNano()) / 1e9
	var got []any
	if err := json.Unmarshal(invoke(t, w, fn).Payload, &got); err != nil {
		t.Fatal(err)
	}
	if loaded, _ := got[0].(float64); loaded == 0 || loaded >= asked {
		t.Errorf("heavy was imported at %v, after the invocation was asked for (%v): not ahead", got[0], asked)
	}
	if got[1] != "hello" || got[2] != "/opt/python/heavy/__init__.py" {
		t.Errorf("the layer's module saw GREETING=%v from %v: want hello from /opt/python", got[1], got[2])
	}

	// Its own heavy.py shadows the layer's: not the stocked sandbox.
	own := deployFiles(t, blobs, "g", 1, map[string]string{"main.py": handler, "heavy.py": "LOADED_AT = -1\nSEEN = 'own'\n"})
	own.Runtime, own.Env, own.Deps = fn.Runtime, fn.Env, fn.Deps
	if err := json.Unmarshal(invoke(t, w, own).Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got[1] != "own" {
		t.Errorf("a function whose code has heavy.py imported %v from %v", got[1], got[2])
	}
}

func TestTopLevelModulesOfALayer(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"pkg/__init__.py", "ns/sub.py", "mod.py", "ext.cpython-311-x86_64-linux-gnu.so", "_private.py",
		"pkg-1.0.dist-info/METADATA", "bin/tool", "__pycache__/mod.cpython-311.pyc", "data/readme.txt", "pkg.libs/lib.so"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(topLevelModules(dir), " "); got != "ext mod ns pkg" {
		t.Errorf("topLevelModules = %q, want ext mod ns pkg", got)
	}
}
