package pycheck

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"nimbus/internal/codepkg"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

func TestMain(m *testing.M) {
	// The isolating executor re-executes this binary to build a sandbox.
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	os.Exit(m.Run())
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkers(t *testing.T) map[string]*Checker {
	t.Helper()
	rts, err := python.Discover()
	if err != nil {
		t.Skip("no Python here")
	}
	out := map[string]*Checker{"as a plain process": {Runtimes: rts, TempDir: t.TempDir()}}
	if os.Geteuid() == 0 {
		e, err := sandbox.NewIsolatedExecutor(sandbox.IsolatedConfig{StateDir: t.TempDir()})
		if err != nil {
			t.Logf("no sandbox: %v", err)
		} else {
			t.Cleanup(func() { e.Close() })
			out["in a sandbox"] = &Checker{Runtimes: rts, Executor: e, TempDir: t.TempDir()}
		}
	}
	return out
}

func TestCheckRefusesCodeThatCannotBeImported(t *testing.T) {
	const ok = "def handler(event, context):\n    return {}\n"
	cases := []struct {
		name    string
		files   map[string]string
		handler string
		want    string // "" for no problem
	}{
		{"a package that compiles passes", map[string]string{"main.py": ok, "lib/util.py": "X = 1\n"}, "main.handler", ""},
		{"a handler in a subpackage passes", map[string]string{"pkg/__init__.py": "", "pkg/mod.py": ok}, "pkg.mod.handler", ""},
		{"a syntax error names its file and line", map[string]string{"main.py": "import os\n\ndef handler(event, context)\n    return 1\n"}, "main.handler", "main.py:3: SyntaxError"},
		{"a syntax error in another module is found too", map[string]string{"main.py": ok, "lib/bad.py": "x = (\n"}, "main.handler", "lib/bad.py:1: SyntaxError"},
		{"an indentation error", map[string]string{"main.py": "def handler(e, c):\nreturn 1\n"}, "main.handler", "main.py:2: IndentationError"},
		{"a missing handler module", map[string]string{"main.py": ok}, "mian.handler", "mian.py: the handler's module 'mian' is not in the package"},
		{"a missing module in a package", map[string]string{"pkg/__init__.py": ""}, "pkg.mod.handler", "pkg/mod.py: the handler's module 'pkg.mod'"},
	}
	for mode, c := range checkers(t) {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := c.Check(context.Background(), zipOf(t, tc.files), c.Runtimes[0].Name, tc.handler)
					if tc.want == "" {
						if err != nil {
							t.Fatalf("refused: %v", err)
						}
						return
					}
					var ce *Error
					if !errors.As(err, &ce) || !errors.Is(err, codepkg.ErrInvalidPackage) {
						t.Fatalf("got %v, want an *Error wrapping ErrInvalidPackage", err)
					}
					if !strings.Contains(err.Error(), tc.want) {
						t.Errorf("error %q does not say %q", err, tc.want)
					}
				})
			}
		})
	}
}

func TestCheckNeverRunsTheCode(t *testing.T) {
	for mode, c := range checkers(t) {
		t.Run(mode, func(t *testing.T) {
			marker := t.TempDir() + "/ran"
			code := "open(" + strings.ReplaceAll(`"`+marker+`"`, `\`, `\\`) + ", 'w').close()\ndef handler(e, c):\n    return 1\n"
			if err := c.Check(context.Background(), zipOf(t, map[string]string{"main.py": code}), c.Runtimes[0].Name, "main.handler"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the check ran the module's code")
			}
		})
	}
}

func TestCheckWithoutTheRuntimeSaysSo(t *testing.T) {
	c := &Checker{}
	if err := c.Check(context.Background(), zipOf(t, map[string]string{"main.py": ""}), "python3.99", "main.handler"); !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("got %v, want ErrNoRuntime", err)
	}
}

func TestTheSamePackageIsCompiledOnce(t *testing.T) {
	for mode, c := range checkers(t) {
		t.Run(mode, func(t *testing.T) {
			rt := c.Runtimes[0].Name
			good := zipOf(t, map[string]string{"main.py": "def handler(e, c):\n    return 1\n"})
			bad := zipOf(t, map[string]string{"main.py": "def handler(e, c)\n"})
			steps := []struct {
				zip      []byte
				handler  string
				wantErr  bool
				wantRuns int
			}{
				{good, "main.handler", false, 1},
				{good, "main.handler", false, 1}, // remembered
				{good, "main.other", false, 2},   // another handler is another check
				{bad, "main.handler", true, 3},
				{bad, "main.handler", true, 3}, // its problems are remembered too
			}
			for i, st := range steps {
				err := c.Check(context.Background(), st.zip, rt, st.handler)
				var ce *Error
				if st.wantErr != errors.As(err, &ce) || (!st.wantErr && err != nil) {
					t.Fatalf("step %d: got %v, want an *Error: %v", i, err, st.wantErr)
				}
				c.mu.Lock()
				runs := c.runs
				c.mu.Unlock()
				if runs != st.wantRuns {
					t.Fatalf("step %d: %d checks ran, want %d", i, runs, st.wantRuns)
				}
			}
		})
	}
}

// BenchmarkDeployCheckOfOnePackage is the compile check a deploy of the
// same package pays, the first time and then each time again.
func BenchmarkDeployCheckOfOnePackage(b *testing.B) {
	rts, err := python.Discover()
	if err != nil {
		b.Skip("no Python here")
	}
	zip := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("main.py")
		w.Write([]byte("def handler(e, c):\n    return 1\n"))
		zw.Close()
		return buf.Bytes()
	}()
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			c := &Checker{Runtimes: rts, TempDir: b.TempDir()}
			if err := c.Check(context.Background(), zip, rts[0].Name, "main.handler"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		c := &Checker{Runtimes: rts, TempDir: b.TempDir()}
		c.Check(context.Background(), zip, rts[0].Name, "main.handler")
		for b.Loop() {
			if err := c.Check(context.Background(), zip, rts[0].Name, "main.handler"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
