package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/deps/depstest"
	"nimbus/internal/runtime/python"
	"nimbus/pkg/client"
)

// depsHandler imports what its requirements.txt names and reports where
// it found it.
const depsHandler = `import greet

def handler(event, context):
    return {"said": greet.hi(event.get("name", "x")), "from": greet.__file__}
`

var (
	greetWheel = depstest.Wheel{Name: "greet", Version: "1.0", Requires: []string{"shout>=0.1"},
		Files: map[string]string{"greet/__init__.py": "import shout\n\ndef hi(n):\n    return shout.up('hi ' + n)\n"}}
	shoutWheel = depstest.Wheel{Name: "shout", Version: "0.2", Files: map[string]string{"shout.py": "def up(s):\n    return s.upper()\n"}}
)

// writeDepsFunction writes a function whose package has a
// requirements.txt.
func writeDepsFunction(t *testing.T, dir, name, requirements string) string {
	t.Helper()
	p := writeFunction(t, dir, name, depsHandler)
	if err := os.WriteFile(filepath.Join(p, "requirements.txt"), []byte(requirements), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A deploy with a requirements.txt gets its packages, fetched by the
// server from the configured index and installed in a sandbox, mounted
// at /opt/python on a worker of its own (the layer replicated like
// code); a second function with the same requirements reuses the layer
// without asking the index for anything; a requirement pip cannot
// resolve fails the deploy with pip's own message while the revision
// before keeps serving; nimbus builds tells each build apart.
func TestDeployBuildsTheRequirementsIntoALayerTheFunctionImports(t *testing.T) {
	parallel(t)
	ix := depstest.NewIndex(t, greetWheel, shoutWheel)
	c := startCluster(t, 2, 1, "--pip-index-url", ix.URL)
	dir := t.TempDir()

	out := c.mustCLI(1, 0, "deploy", writeDepsFunction(t, dir, "first", "# what it needs\ngreet==1.0\n"))
	if !strings.Contains(out.stdout, "dependencies:") || !strings.Contains(out.stdout, "greet==1.0 shout==0.2") {
		t.Fatalf("the deploy does not name the packages it installed:\n%s", out.stdout)
	}
	// The deploy is announced to the worker, which fetches the code and
	// the layer before any invocation asks for them.
	fn, ok := c.getFunction(0, "first")
	if !ok || fn.Deps == nil {
		t.Fatalf("first: %+v", fn)
	}
	code := filepath.Join(c.dir, c.workers[0].id, "worker", "code")
	waitFor(t, patience, "the worker unpacked the code and the layer ahead", func() bool {
		_, errCode := os.Stat(filepath.Join(code, fn.CodeSHA256))
		_, errDeps := os.Stat(filepath.Join(code, fn.Deps.SHA256))
		return errCode == nil && errDeps == nil
	})
	var said struct{ Said, From string }
	r := c.mustCLI(0, 0, "invoke", "first", "--data", `{"name":"you"}`)
	if err := json.Unmarshal([]byte(r.stdout), &said); err != nil || said.Said != "HI YOU" || !strings.HasPrefix(said.From, "/opt/python/") {
		t.Fatalf("invoke first: %q (%v): want HI YOU from /opt/python", r.stdout, err)
	}
	fetched := len(ix.Requests())
	if fetched == 0 {
		t.Fatal("the index saw no request: where did the packages come from?")
	}

	c.mustCLI(0, 0, "deploy", writeDepsFunction(t, dir, "second", "greet==1.0\n"))
	if n := len(ix.Requests()); n != fetched {
		t.Errorf("the second deploy of the same requirements asked the index %d more times: %v", n-fetched, ix.Requests()[fetched:])
	}
	r = c.mustCLI(0, 0, "invoke", "second")
	if !strings.Contains(r.stdout, "HI X") {
		t.Fatalf("invoke second: %s", r.stdout)
	}

	// A requirement the index cannot satisfy: pip's message, and the
	// first revision still serves.
	bad := c.cli(0, patience, "deploy", writeDepsFunction(t, dir, "first", "greet==1.0\nnosuch==2.0\n"))
	if bad.code == 0 || !strings.Contains(bad.stderr, "No matching distribution found for nosuch==2.0") {
		t.Fatalf("a deploy of an unresolvable requirement: %+v", bad)
	}
	// A requirements.txt that is not one: refused before any build.
	bad = c.cli(0, patience, "deploy", writeDepsFunction(t, dir, "first", "-e ./vendor/lib\n"))
	if bad.code == 0 || !strings.Contains(bad.stderr, "line 1") || !strings.Contains(bad.stderr, "editable install") {
		t.Fatalf("a deploy of an editable requirement: %+v", bad)
	}
	if fn, ok := c.getFunction(0, "first"); !ok || fn.Revision != 1 {
		t.Fatalf("first after two refused deploys: %+v (want revision 1)", fn)
	}
	r = c.mustCLI(0, 0, "invoke", "first")
	if !strings.Contains(r.stdout, "HI X") {
		t.Fatalf("first no longer serves after a failed build: %s", r.stdout)
	}

	var builds []client.Build
	if err := json.Unmarshal([]byte(c.mustCLI(0, 0, "builds", "-o", "json").stdout), &builds); err != nil {
		t.Fatal(err)
	}
	if len(builds) != 3 {
		t.Fatalf("builds: %+v, want three (the refused requirements.txt builds nothing)", builds)
	}
	failed, hit, built := builds[0], builds[1], builds[2]
	if failed.Function != "first" || failed.Status != client.BuildFailed || !strings.Contains(failed.Error, "nosuch==2.0") {
		t.Errorf("the newest build: %+v", failed)
	}
	if hit.Function != "second" || hit.Status != client.BuildSucceeded || !hit.CacheHit {
		t.Errorf("the second function's build: %+v, want a cache hit", hit)
	}
	if built.Function != "first" || built.Status != client.BuildSucceeded || built.CacheHit || built.Layer == nil || built.Layer.SHA256 != hit.Layer.SHA256 {
		t.Errorf("the first build: %+v", built)
	}
	if log := c.mustCLI(0, 0, "builds", "first", "--log").stdout; !strings.Contains(log, "nosuch") {
		t.Errorf("builds first --log shows the latest build's log:\n%s", log)
	}

	// A client that asks for the build's log gets it as it is written,
	// then the outcome: the function, or the error with its status.
	api := client.New("http://"+c.servers[1].addr, c.token)
	zip, err := codepkg.ZipDir(writeDepsFunction(t, dir, "third", "shout==0.2\n"), codepkg.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var log strings.Builder
	fn, created, err := api.Deploy(ctx, client.FunctionConfig{Name: "third", Handler: "main.handler"}, zip, client.DeployOptions{BuildLog: &log})
	if err != nil || !created || fn.Deps == nil || strings.Join(fn.Deps.Packages, " ") != "shout==0.2" {
		t.Fatalf("a streamed deploy: %+v %v %v", fn, created, err)
	}
	if !strings.Contains(log.String(), "shout") || !strings.Contains(log.String(), "nimbus: installing shout==0.2") {
		t.Errorf("the streamed build log:\n%s", log.String())
	}
	zip, err = codepkg.ZipDir(writeDepsFunction(t, dir, "third", "shout==7\n"), codepkg.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = api.Deploy(ctx, client.FunctionConfig{Name: "third", Handler: "main.handler"}, zip, client.DeployOptions{BuildLog: io.Discard})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Code != "BuildFailed" || !strings.Contains(ae.Message, "shout==7") {
		t.Errorf("a streamed deploy that fails: %v", err)
	}
}

// The README's dependency example: make-index.py builds the index,
// python3 -m http.server serves it, nimbus dev is given it, and
// examples/slugs imports textcase from its dependency layer.
func TestTheReadmesDependencyExample(t *testing.T) {
	parallel(t)
	py, err := exec.LookPath("python3")
	if real, rerr := python.Discover(); rerr == nil && len(real) > 0 {
		py, err = real[0].Executable, nil // not a pyenv shim
	}
	if err != nil {
		t.Skip("no python3")
	}
	index := t.TempDir()
	if out, err := exec.Command(py, "../examples/textcase/make-index.py", index).CombinedOutput(); err != nil {
		t.Fatalf("make-index.py: %v\n%s", err, out)
	}
	port := freePort(t)
	_, p, _ := strings.Cut(port, ":")
	srv := exec.Command(py, "-m", "http.server", p, "--bind", "127.0.0.1", "-d", index)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitFor(t, 30*time.Second, "the index answers", func() bool {
		resp, err := http.Get("http://" + port + "/simple/textcase/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	n := startDev(t, t.TempDir(), "--pip-index-url", "http://"+port+"/simple/")
	if out := n.mustCLI(0, "deploy", "../examples/slugs").stdout; !strings.Contains(out, "textcase==1.0") {
		t.Fatalf("deploy slugs:\n%s", out)
	}
	r := n.mustCLI(0, "invoke", "slugs", "--data", "@../examples/slugs/event.json")
	if !strings.Contains(r.stdout, `"hello-world", "unicode-friends", "spaces-everywhere"`) {
		t.Fatalf("slugs answered %s", r.stdout)
	}
	if log := n.mustCLI(0, "builds", "slugs", "--log").stdout; !strings.Contains(log, "textcase") {
		t.Errorf("builds slugs --log:\n%s", log)
	}
}

// A function's page in the console names its layers, its packages and
// its latest builds, and passes axe.
func TestTheConsoleShowsAFunctionsDependencies(t *testing.T) {
	ix := depstest.NewIndex(t, greetWheel, shoutWheel)
	n, b := signedInConsole(t, "--pip-index-url", ix.URL)
	layer := writeTree(t, map[string]string{"python/common.py": "X = 1\n"})
	n.mustCLI(0, "layers", "publish", "common", layer)
	n.mustCLI(0, "deploy", writeDepsFunction(t, t.TempDir(), "deps-ui", "greet==1.0\n"), "--layer", "common:1")

	b.open("/ui/functions/deps-ui")
	deps := b.text("#dependencies")
	for _, want := range []string{"common:1", "/opt/layers/common", "greet==1.0", "shout==0.2", "/opt/python"} {
		if !strings.Contains(deps, want) {
			t.Errorf("the dependencies section lacks %q:\n%s", want, deps)
		}
	}
	if builds := b.text("#builds"); !strings.Contains(builds, "succeeded") || !strings.Contains(builds, "miss") {
		t.Errorf("the builds table:\n%s", builds)
	}
	b.check("function-dependencies")
}

// A namespace that allows source distributions gets a requirement only
// an sdist satisfies built (in the build's sandbox); the default
// namespace does not.
func TestSourceDistributionsAreBuiltOnlyWhereTheNamespaceAllowsThem(t *testing.T) {
	parallel(t)
	if os.Geteuid() != 0 {
		t.Skip("source builds need the sandbox")
	}
	ix := depstest.NewIndex(t)
	ix.AddSdist("fromsource", "2.0", `module = "VALUE = 'built from source'\n"`)
	n := startDev(t, t.TempDir(), "--pip-index-url", ix.URL)
	n.mustCLI(0, "namespaces", "create", "src", "--allow-sdist")
	fn := writeFunction(t, t.TempDir(), "src-fn", "import fromsource\n\ndef handler(event, context):\n    return fromsource.VALUE\n")
	if err := os.WriteFile(filepath.Join(fn, "requirements.txt"), []byte("fromsource==2.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := n.cli("", "deploy", fn); r.code != 3 || !strings.Contains(r.stderr, "fromsource==2.0") {
		t.Fatalf("the default namespace built an sdist: %+v", r)
	}
	if out := n.mustCLI(0, "deploy", fn, "--namespace", "src").stdout; !strings.Contains(out, "fromsource==2.0") {
		t.Fatalf("deploy in src:\n%s", out)
	}
	if r := n.mustCLI(0, "invoke", "src-fn", "--namespace", "src"); !strings.Contains(r.stdout, "built from source") {
		t.Fatalf("invoke: %+v", r)
	}
}
