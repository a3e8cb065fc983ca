package e2e

import (
	"archive/zip"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// writeTree writes files (path -> content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeZip writes a zip of files (path -> content), paths as given.
func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layer.zip")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for p, c := range files {
		w, err := zw.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(c))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return out
}

const layersHandler = `import shared, onlyalpha, deep

def handler(event, context):
    return [shared.WHO, onlyalpha.X, deep.Y, shared.__file__]
`

// Layers are published as numbered versions, mounted by the functions
// that name them in sys.path order (the first named wins), checked at
// deploy (existence, runtime, count), refused when they would escape
// their root, and kept while a function mounts them.
func TestLayersArePublishedMountedInOrderAndKeptWhileInUse(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	var offers []client.RuntimeOffer
	if err := json.Unmarshal([]byte(n.mustCLI(0, "runtimes", "-o", "json").stdout), &offers); err != nil || len(offers) == 0 {
		t.Fatalf("runtimes: %v", err)
	}
	rt := offers[0].Name

	alpha := writeTree(t, map[string]string{"python/shared.py": "WHO = 'alpha'\n", "python/onlyalpha.py": "X = 1\n"})
	if out := n.mustCLI(0, "layers", "publish", "alpha", alpha, "--description", "the first").stdout; !strings.Contains(out, "published alpha:1") {
		t.Fatalf("publish alpha: %s", out)
	}
	beta := writeTree(t, map[string]string{"python/shared.py": "WHO = 'beta'\n", "python/lib/" + rt + "/site-packages/deep.py": "Y = 2\n"})
	n.mustCLI(0, "layers", "publish", "beta", beta, "--runtime", rt)
	alpha2 := writeTree(t, map[string]string{"python/shared.py": "WHO = 'alpha2'\n", "python/onlyalpha.py": "X = 3\n"})
	if out := n.mustCLI(0, "layers", "publish", "alpha", alpha2).stdout; !strings.Contains(out, "published alpha:2") {
		t.Fatalf("publish alpha again: %s", out)
	}

	dir := t.TempDir()
	fn := writeFunction(t, dir, "mounts", layersHandler)
	n.mustCLI(0, "deploy", fn, "--layer", "alpha:1", "--layer", "beta:1")
	var got []any
	if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "mounts").stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got[0] != "alpha" || got[1] != 1.0 || got[2] != 2.0 || got[3] != "/opt/layers/alpha/python/shared.py" {
		t.Fatalf("with alpha:1 then beta:1 the function sees %v", got)
	}
	// The manifest names them the other way round: beta's shared wins.
	if err := os.WriteFile(filepath.Join(fn, "nimbus.yaml"), []byte("name: mounts\nlayers: [\"beta:1\", \"alpha:2\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.mustCLI(0, "deploy", fn)
	if err := json.Unmarshal([]byte(n.mustCLI(0, "invoke", "mounts").stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got[0] != "beta" || got[1] != 3.0 {
		t.Fatalf("with beta:1 then alpha:2 the function sees %v", got)
	}

	// Bad layers: each refused with a reason, the function unchanged.
	n.mustCLI(0, "layers", "publish", "gamma", alpha, "--runtime", "python3.2")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--layer", "alpha:9"}, "layer alpha:9 does not exist"},
		{[]string{"--layer", "alpha"}, "is not NAME:VERSION"},
		{[]string{"--layer", "gamma:1"}, "is built for python3.2"},
		{[]string{"--layer", "alpha:1", "--layer", "alpha:2"}, "named twice"},
		{[]string{"--layer", "a:1", "--layer", "b:1", "--layer", "c:1", "--layer", "d:1", "--layer", "e:1", "--layer", "f:1"}, "at most 5"},
	} {
		r := n.cli("", append([]string{"deploy", fn}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.says) {
			t.Errorf("deploy %v: exit %d, %s; want a refusal saying %q", c.args, r.code, r.stderr, c.says)
		}
	}
	if f := n.mustCLI(0, "get", "mounts", "-o", "json").stdout; !strings.Contains(f, `"revision": 2`) {
		t.Errorf("refused deploys changed the function:\n%s", f)
	}

	// A layer whose zip escapes its root, or that is too large, is not
	// stored.
	if r := n.cli("", "layers", "publish", "evil", writeZip(t, map[string]string{"../escape.py": "X = 1\n"})); r.code != 3 || !strings.Contains(r.stderr, "..") {
		t.Errorf("a layer with ..: %+v", r)
	}
	big := writeZip(t, map[string]string{"python/big.bin": strings.Repeat("\x00", 251<<20)})
	if r := n.cli("", "layers", "publish", "big", big); r.code != 3 || !strings.Contains(r.stderr, "413") {
		t.Errorf("a layer over 250 MB unzipped: %+v", r)
	}
	var layers []client.Layer
	if err := json.Unmarshal([]byte(n.mustCLI(0, "layers", "ls", "-o", "json").stdout), &layers); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range layers {
		names = append(names, l.Name+":"+strconv.FormatInt(l.Version, 10))
	}
	if strings.Join(names, " ") != "alpha:1 alpha:2 beta:1 gamma:1" {
		t.Errorf("layers ls: %v", names)
	}

	// In use: kept; no longer in use: removed.
	if r := n.cli("", "layers", "rm", "beta:1"); r.code != 3 || !strings.Contains(r.stderr, "mounted by mounts") {
		t.Errorf("removing a layer in use: %+v", r)
	}
	n.mustCLI(0, "layers", "rm", "alpha:1")
	if r := n.cli("", "layers", "get", "alpha:1"); r.code != 3 {
		t.Errorf("a removed layer is still there: %+v", r)
	}
	if out := n.mustCLI(0, "layers", "get", "alpha").stdout; !strings.Contains(out, "alpha:2") {
		t.Errorf("layers get alpha shows the latest version:\n%s", out)
	}
}
