package worker

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/sandbox"
)

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
			fn := deploy(t, blobs, "f", 1, "")
			// The function's own shadowed.py comes first.
			code := zipOf(t, map[string]string{"main.py": "import lib, shadowed, sys\ndef handler(e, c):\n    return [lib.WHO, shadowed.WHO, lib.__file__, sys.path[1]]\n", "shadowed.py": "WHO = 'code'\n"})
			if fn.CodeSHA256, err = blobs.Put(code); err != nil {
				t.Fatal(err)
			}
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
