package cli

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/pkg/client"
)

// runIn runs the CLI with Dir set to dir.
func runIn(t *testing.T, dir string, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(Env{Args: args, Stdout: &out, Stderr: &errOut, Dir: dir,
		Getenv: func(k string) string { return env[k] }, IsTerminal: func(any) bool { return false }})
	return result{code, out.String(), errOut.String()}
}

// deployedConfig decodes the config part of the fake's last request.
func deployedConfig(t *testing.T, f *fakeAPI) (client.FunctionConfig, []byte) {
	t.Helper()
	req, body := f.last()
	_, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var cfg client.FunctionConfig
	var code []byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var buf bytes.Buffer
		buf.ReadFrom(p)
		switch p.FormName() {
		case "config":
			if err := json.Unmarshal(buf.Bytes(), &cfg); err != nil {
				t.Fatal(err)
			}
		case "code":
			code = buf.Bytes()
		}
	}
	return cfg, code
}

func TestInitScaffoldsAFunctionThatDeploys(t *testing.T) {
	dir := t.TempDir()
	r := runIn(t, dir, nil, "init", "greeter")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	main, err := os.ReadFile(filepath.Join(dir, "greeter", "main.py"))
	if err != nil || !strings.Contains(string(main), "def handler(event, context):") || !strings.Contains(string(main), `event.get("name")`) {
		t.Fatalf("main.py: %v\n%s", err, main)
	}
	cfg, found, err := codepkg.LoadManifest(filepath.Join(dir, "greeter"))
	if err != nil || !found {
		t.Fatalf("manifest: found %v err %v", found, err)
	}
	want := client.FunctionConfig{Name: "greeter", Handler: "main.handler", MemoryMB: 128, Timeout: client.Duration(3 * time.Second)}
	if cfg.Name != want.Name || cfg.Handler != want.Handler || cfg.MemoryMB != want.MemoryMB || cfg.Timeout != want.Timeout || cfg.Runtime != "" {
		t.Fatalf("manifest %+v, want %+v", cfg, want)
	}

	if r := runIn(t, dir, nil, "init", "greeter"); r.code != 2 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second init: %+v", r)
	}
	if r := runIn(t, dir, nil, "init", "Bad_Name"); r.code != 2 || !strings.Contains(r.stderr, "name") {
		t.Fatalf("bad name: %+v", r)
	}

	f := &fakeAPI{}
	r = runIn(t, dir, against(f.start(t)), "deploy", "greeter")
	if r.code != 0 || !strings.Contains(r.stdout, "greeter") || !strings.Contains(r.stdout, "sha-of-code") || !strings.Contains(r.stdout, "revision:") {
		t.Fatalf("deploy: %+v", r)
	}
	got, code := deployedConfig(t, f)
	if got.Name != "greeter" || got.MemoryMB != 128 {
		t.Fatalf("deployed config %+v", got)
	}
	if _, err := codepkg.Validate(code, codepkg.DefaultLimits()); err != nil {
		t.Fatalf("uploaded code is not a valid package: %v", err)
	}
}

func TestDeployFlagsOverrideTheManifest(t *testing.T) {
	dir := t.TempDir()
	if r := runIn(t, dir, nil, "init", "fn"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	f := &fakeAPI{}
	r := runIn(t, dir, against(f.start(t)), "deploy", "fn", "--name", "other", "--memory", "512",
		"--timeout", "30s", "--runtime", "python3.12", "--handler", "app.main", "--env", "A=1", "--env", "B=x=y", "-o", "json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var fn client.Function
	if err := json.Unmarshal([]byte(r.stdout), &fn); err != nil || fn.Name != "other" || fn.Revision != 1 || fn.CodeSHA256 != "sha-of-code" {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}
	got, _ := deployedConfig(t, f)
	if got.Name != "other" || got.MemoryMB != 512 || got.Timeout != client.Duration(30*time.Second) ||
		got.Runtime != "python3.12" || got.Handler != "app.main" || got.Env["A"] != "1" || got.Env["B"] != "x=y" {
		t.Fatalf("deployed config %+v", got)
	}
}

func TestDeployWithoutAManifestUsesTheDirectoryName(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "plain-fn"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain-fn", "main.py"), []byte("def handler(e, c):\n    return 1\n"), 0o644)
	f := &fakeAPI{}
	if r := runIn(t, dir, against(f.start(t)), "deploy", "plain-fn"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if got, _ := deployedConfig(t, f); got.Name != "plain-fn" {
		t.Fatalf("name %q", got.Name)
	}
}

func TestDeployAZipFile(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "main.py"), []byte("def handler(e, c):\n    return 1\n"), 0o644)
	zip, err := codepkg.ZipDir(filepath.Join(dir, "src"), codepkg.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "zipped.zip"), zip, 0o644)
	f := &fakeAPI{}
	if r := runIn(t, dir, against(f.start(t)), "deploy", "zipped.zip"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	got, code := deployedConfig(t, f)
	if got.Name != "zipped" || !bytes.Equal(code, zip) {
		t.Fatalf("name %q, code %d bytes", got.Name, len(code))
	}
}

func TestDeployRejectsInvalidInputLocally(t *testing.T) {
	dir := t.TempDir()
	if r := runIn(t, dir, nil, "init", "fn"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	f := &fakeAPI{}
	env := against(f.start(t))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"memory out of range", []string{"deploy", "fn", "--memory", "64"}, "memory"},
		{"an invalid name", []string{"deploy", "fn", "--name", "No"}, "name"},
		{"an env flag without =", []string{"deploy", "fn", "--env", "NOPE"}, "KEY=VALUE"},
		{"an unreadable timeout", []string{"deploy", "fn", "--timeout", "soon"}, "--timeout"},
		{"a missing path", []string{"deploy", "missing"}, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runIn(t, dir, env, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("%+v", r)
			}
		})
	}
	if req, _ := f.last(); req != nil {
		t.Fatalf("invalid input reached the server: %s %s", req.Method, req.URL)
	}
}

func TestDeployShowsProgressOnlyOnATerminal(t *testing.T) {
	dir := t.TempDir()
	if r := runIn(t, dir, nil, "init", "fn"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	f := &fakeAPI{}
	env := against(f.start(t))
	var out, errOut bytes.Buffer
	code := Run(Env{Args: []string{"deploy", "fn"}, Stdout: &out, Stderr: &errOut, Dir: dir,
		Getenv: func(k string) string { return env[k] }, IsTerminal: func(any) bool { return true }})
	if code != 0 || !strings.Contains(errOut.String(), "Uploading") || !strings.Contains(errOut.String(), "(100%)") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if r := runIn(t, dir, env, "deploy", "fn"); r.code != 0 || r.stderr != "" {
		t.Fatalf("not a terminal: %+v", r)
	}
}
