package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mainPyDir writes main.py (and nothing else) into a fresh directory.
func mainPyDir(t *testing.T, mainPy string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.py"), []byte(mainPy), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDeployRefusesCodeThatCannotBeImported(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	good := mainPyDir(t, "def handler(event, context):\n    return {'rev': 'good'}\n")
	n.mustCLI(0, "deploy", good, "--name", "checked")
	before, _ := n.function("checked")

	broken := "import json\n\ndef handler(event, context)\n    return {'rev': 'broken'}\n"
	cases := []struct {
		name string
		args []string
		code string
		want []string // in the CLI's message and the API's
	}{
		{"a syntax error", nil, broken, []string{"main.py:3", "SyntaxError"}},
		{"a handler module that does not exist", []string{"--handler", "mian.handler"}, "def handler(event, context):\n    return 1\n", []string{"mian.py", "not in the package"}},
		{"a syntax error in a module the handler does not name", nil, "", []string{"lib.py:1", "SyntaxError"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := mainPyDir(t, "def handler(event, context):\n    return {'rev': 'new'}\n")
			if c.code != "" {
				dir = mainPyDir(t, c.code)
			} else {
				os.WriteFile(filepath.Join(dir, "lib.py"), []byte("x = (\n"), 0o644)
			}
			r := n.mustCLI(3, append([]string{"deploy", dir, "--name", "checked"}, c.args...)...)
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("deploy's message does not say %q:\n%s", w, r.stderr)
				}
			}
			// Nothing was stored: the previous revision is still served.
			if fn, _ := n.function("checked"); fn.Revision != before.Revision || fn.CodeSHA256 != before.CodeSHA256 {
				t.Errorf("a refused deploy changed the function: revision %d→%d", before.Revision, fn.Revision)
			}
			if r := n.mustCLI(0, "invoke", "checked"); !strings.Contains(r.stdout, "good") {
				t.Errorf("after a refused deploy the function answers %q, want the good revision's", r.stdout)
			}
		})
	}

	t.Run("the API answers 400 with file and line", func(t *testing.T) {
		status, e := n.deployJSON("fresh", map[string]any{}, zipOf(t, map[string]string{"main.py": broken}))
		if status != 400 || e.Error.Code != "BadRequest" || !strings.Contains(e.Error.Message, "main.py:3") {
			t.Errorf("deploy of broken code: %d %+v, want 400 naming main.py:3", status, e)
		}
		if _, ok := n.function("fresh"); ok {
			t.Errorf("a refused first deploy created the function")
		}
		status, e = n.deployJSON("fresh", map[string]any{"handler": "nowhere.handler"}, zipOf(t, map[string]string{"main.py": okHandler}))
		if status != 400 || !strings.Contains(e.Error.Message, "nowhere.py") {
			t.Errorf("deploy without the handler's module: %d %+v, want 400 naming nowhere.py", status, e)
		}
	})

	t.Run("code that compiles but fails when imported still deploys", func(t *testing.T) {
		// The check compiles and never imports: an import error is the
		// runtime's to report, at the first invocation.
		status, e := n.deployJSON("late", map[string]any{}, zipOf(t, map[string]string{"main.py": "import no_such_module\n\ndef handler(event, context):\n    return 1\n"}))
		if status != 201 {
			t.Fatalf("deploy: %d %+v", status, e)
		}
		r := n.cli("", "invoke", "late")
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "no_such_module") {
			t.Errorf("invoke of code with a missing import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}
