package scan

import (
	"archive/zip"
	"bytes"
	"os/exec"
	"testing"
)

// A file Bandit cannot parse is a finding, not silence.
func TestAFileBanditCannotParseIsAFinding(t *testing.T) {
	if _, err := exec.LookPath("bandit"); err != nil {
		t.Skip("bandit is not installed")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("main.py")
	w.Write([]byte("def handler(e, c)\n    return 1\n"))
	w, _ = zw.Create("lib/fine.py")
	w.Write([]byte("X = 1\n"))
	zw.Close()
	r, err := Scanner{TempDir: t.TempDir()}.Scan(t.Context(), buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 {
		t.Fatalf("findings %+v, want one for main.py", r.Findings)
	}
	f := r.Findings[0]
	if f.File != "main.py" || f.TestID != UnscannedTestID || f.Severity != "HIGH" {
		t.Errorf("finding %+v, want main.py unscanned at HIGH", f)
	}
	if got := (Policy{Mode: ModeBlock, BlockAt: "HIGH"}).Blocking(r); len(got) != 1 {
		t.Errorf("block:HIGH does not block an unscanned file")
	}
}
