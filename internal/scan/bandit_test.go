package scan

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"nimbus/internal/model"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{
		"off": {Mode: ModeOff}, "warn": {Mode: ModeWarn},
		"block": {Mode: ModeBlock, BlockAt: "HIGH"}, "block:medium": {Mode: ModeBlock, BlockAt: "MEDIUM"},
	} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "loud", "block:CRITICAL"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", bad)
		}
	}
}

func TestBlockingCountsFindingsAtOrAboveTheSeverity(t *testing.T) {
	r := &model.ScanReport{Findings: []model.Finding{{Severity: "LOW"}, {Severity: "MEDIUM"}, {Severity: "HIGH"}}}
	cases := []struct {
		policy Policy
		want   int
	}{
		{Policy{Mode: ModeWarn}, 0},
		{Policy{Mode: ModeBlock, BlockAt: "HIGH"}, 1},
		{Policy{Mode: ModeBlock, BlockAt: "MEDIUM"}, 2},
		{Policy{Mode: ModeBlock, BlockAt: "LOW"}, 3},
	}
	for _, c := range cases {
		if got := len(c.policy.Blocking(r)); got != c.want {
			t.Errorf("%+v blocks %d, want %d", c.policy, got, c.want)
		}
	}
	if (Policy{Mode: ModeBlock, BlockAt: "LOW"}).Blocking(nil) != nil {
		t.Error("a missing report blocked")
	}
}

// A scan unpacks the package under TempDir and leaves nothing there.
func TestScanUnpacksUnderTempDirAndCleansUp(t *testing.T) {
	if _, err := exec.LookPath("bandit"); err != nil {
		t.Skip("bandit is not installed")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("main.py")
	w.Write([]byte("import subprocess\n\ndef handler(e, c):\n    return subprocess.call(e['cmd'], shell=True)\n"))
	zw.Close()
	dir := t.TempDir()
	r, err := Scanner{TempDir: dir}.Scan(t.Context(), buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range r.Findings {
		found = found || (f.File == "main.py" && f.Severity == "HIGH")
	}
	if !found {
		t.Errorf("findings %+v lack main.py's HIGH shell=True call", r.Findings)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("TempDir holds %v (%v) after the scan; want it empty", entries, err)
	}
	if _, err := (Scanner{TempDir: filepath.Join(dir, "missing")}).Scan(t.Context(), buf.Bytes()); err == nil {
		t.Error("a scan with a TempDir that does not exist succeeded")
	}
}
