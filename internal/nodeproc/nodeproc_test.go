package nodeproc

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestTheBannerGivesTheAPIAndTheExecutor(t *testing.T) {
	banner := "Nimbus dev is running.\n\n  API:        http://127.0.0.1:41234\n  Data:       /tmp/x\n" +
		"  Worker:     8 slots; executor: sandbox (cgroup v1)\n"
	cmd := exec.Command("/bin/sh", "-c", "printf '"+banner+"'; exec sleep 60")
	p, err := Start(cmd, APILine, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(10 * time.Second)
	if p.Addr != "http://127.0.0.1:41234" {
		t.Errorf("Addr = %q", p.Addr)
	}
	d := &Dev{Proc: p}
	deadline := time.Now().Add(30 * time.Second)
	for d.Executor() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := d.Executor(); e != "sandbox (cgroup v1)" {
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
