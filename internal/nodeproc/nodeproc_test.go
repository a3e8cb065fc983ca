package nodeproc

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTheBannerGivesTheAPIAndTheExecutor(t *testing.T) {
	banner := "Nimbus dev is running.\n\n  API:        http://127.0.0.1:41234\n  Data:       /tmp/x\n" +
		"  Worker:     8 slots; executor: sandbox (cgroup v1)\n"
	if m := APILine.FindStringSubmatch(banner); m == nil || m[1] != "http://127.0.0.1:41234" {
		t.Errorf("APILine finds %q", m)
	}
	// Waiting for the line after the banner, Start returns once the
	// whole banner is in Out.
	cmd := exec.Command("/bin/sh", "-c", "printf '"+banner+"after the banner\n'; exec sleep 60")
	p, err := Start(cmd, regexp.MustCompile(`(after) the banner`), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "after" {
		t.Errorf("Addr = %q, want the ready line's group", p.Addr)
	}
	if e := (&Dev{Proc: p}).Executor(); e != "sandbox (cgroup v1)" {
		t.Errorf("Executor = %q", e)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Error(err)
	}
}

func TestAProcessThatExitsBeforeServingSaysWhatItPrinted(t *testing.T) {
	_, err := Start(exec.Command("/bin/sh", "-c", "echo no such flag >&2; exit 2"), APILine, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before serving") || !strings.Contains(err.Error(), "no such flag") {
		t.Fatalf("err = %v", err)
	}
}
