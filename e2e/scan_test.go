package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

const shellHandler = "import subprocess\ndef handler(e, c):\n    return subprocess.run(e['cmd'], shell=True).returncode\n"

// TestBanditScansDeploys: with warn (the default) findings are stored
// with the revision; with block a subprocess call with shell=True is
// refused and nothing is created. Without bandit the deploy says so.
func TestBanditScansDeploys(t *testing.T) {
	parallel(t)
	_, err := exec.LookPath("bandit")
	haveBandit := err == nil

	n := startDev(t, t.TempDir(), "--prestart", "0")
	r := n.mustCLI(0, "deploy", writeDir(t, map[string]string{"main.py": shellHandler}), "--name", "shelly")
	if !haveBandit {
		if !strings.Contains(r.stdout, "bandit is not installed") {
			t.Fatalf("without bandit the deploy should say it did not scan:\n%s", r.stdout)
		}
		t.Skip("bandit is not installed here (.ci/run installs it): scanning itself is not tested")
	}
	if !strings.Contains(r.stdout, "code scan:") || !strings.Contains(r.stdout, "1 high") {
		t.Fatalf("deploy output lacks the scan summary:\n%s", r.stdout)
	}
	var fn client.Function
	json.Unmarshal([]byte(n.mustCLI(0, "get", "shelly", "-o", "json").stdout), &fn)
	if fn.Scan == nil || len(fn.Scan.Findings) == 0 {
		t.Fatalf("the revision carries no findings: %+v", fn.Scan)
	}
	var shell bool
	for _, f := range fn.Scan.Findings {
		if f.TestID == "B602" && f.Severity == "HIGH" && f.File == "main.py" && f.Line == 3 {
			shell = true
		}
	}
	if !shell {
		t.Fatalf("bandit did not report subprocess with shell=True (B602) at main.py:3: %+v", fn.Scan.Findings)
	}

	// A namespace's policy overrides the server's (warn here).
	n.mustCLI(0, "namespaces", "create", "strict", "--scan-policy", "block:HIGH")
	r = n.mustCLI(3, "--namespace", "strict", "deploy", writeDir(t, map[string]string{"main.py": shellHandler}), "--name", "shelly")
	if !strings.Contains(r.stderr, "B602") {
		t.Fatalf("the strict namespace's block policy did not refuse the deploy:\n%s", r.stderr)
	}
	n.mustCLI(3, "--namespace", "strict", "get", "shelly")
	n.mustCLI(0, "get", "shelly") // default's, deployed under warn, is still there
	if r := n.cli("", "namespaces", "create", "odd", "--scan-policy", "sometimes"); r.code != 3 || !strings.Contains(r.stderr, "scan_policy") {
		t.Fatalf("a bad scan policy: %+v", r)
	}

	blocking := startDev(t, t.TempDir(), "--prestart", "0", "--scan-policy", "block:HIGH")
	r = blocking.mustCLI(3, "deploy", writeDir(t, map[string]string{"main.py": shellHandler}), "--name", "shelly")
	if !strings.Contains(r.stderr, "B602") || !strings.Contains(r.stderr, "422") {
		t.Fatalf("the block policy's refusal does not name the finding:\n%s", r.stderr)
	}
	blocking.mustCLI(3, "get", "shelly")
	r = blocking.mustCLI(0, "deploy", writeDir(t, map[string]string{"main.py": okHandler}), "--name", "clean")
	if !strings.Contains(r.stdout, "no findings") {
		t.Fatalf("a clean package: %s", r.stdout)
	}
}

// writeDir writes files into a new directory and returns it.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
