package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What a new user meets in the first minutes of `nimbus dev`, each
// against the real binary and server.
func TestFirstMinutesRoughEdges(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0")

	t.Run("the banner suggests the binary as invoked and a name no example uses", func(t *testing.T) {
		// The banner's last lines come after the API line startDev waits for.
		waitFor(t, 30*time.Second, "the banner's Try line", func() bool { return strings.Contains(n.out.String(), "Stop with Ctrl-C") })
		out := n.out.String()
		if !strings.Contains(out, "Try:  "+nimbusBin+" init greeter && "+nimbusBin+" deploy greeter") {
			t.Errorf("banner does not suggest %s init greeter:\n%s", nimbusBin, out)
		}
		if strings.Contains(out, "init hello") {
			t.Errorf("banner suggests hello, the name of an example:\n%s", out)
		}
	})

	t.Run("a deploy replacing code from another directory says so", func(t *testing.T) {
		mine := writeFunction(t, t.TempDir(), "hello", quickHandler)
		other := writeFunction(t, t.TempDir(), "hello", quickHandler)
		if r := n.mustCLI(0, "deploy", mine); strings.Contains(r.stderr, "replaced") {
			t.Errorf("first deploy warned: %s", r.stderr)
		}
		if r := n.mustCLI(0, "deploy", mine); strings.Contains(r.stderr, "replaced") {
			t.Errorf("a redeploy from the same directory warned: %s", r.stderr)
		}
		r := n.mustCLI(0, "deploy", other)
		if !strings.Contains(r.stderr, "replaced function hello (revision ") || !strings.Contains(r.stderr, mine) ||
			!strings.Contains(r.stderr, other) {
			t.Errorf("deploy of hello from another directory did not say it replaced %s's: stderr %q", mine, r.stderr)
		}
	})

	t.Run("get shows concurrency, retries and destinations", func(t *testing.T) {
		dir := writeFunction(t, t.TempDir(), "tuned", quickHandler)
		manifest := "name: tuned\nreserved_concurrency: 3\nprovisioned: 1\nretries: 1\nretry_delay: 30s\n" +
			"destinations:\n  on_failure: function:hello\n"
		if err := os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		n.mustCLI(0, "deploy", dir)
		r := n.mustCLI(0, "get", "tuned")
		for _, want := range []string{"reserved concurrency:  3", "provisioned:           1", "async retries:         1",
			"retry delay:           30s", "on failure:            function:hello", "on success:            none", "max event age:         6h"} {
			if !containsSpaced(r.stdout, want) {
				t.Errorf("nimbus get tuned lacks %q:\n%s", want, r.stdout)
			}
		}
		r = n.mustCLI(0, "get", "hello")
		for _, want := range []string{"reserved concurrency: none", "async retries: 2 (default)", "retry delay: 1m (default)"} {
			if !containsSpaced(r.stdout, want) {
				t.Errorf("nimbus get hello lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	t.Run("schedules show their time zone and get prints a table", func(t *testing.T) {
		r := n.mustCLI(0, "schedules", "create", "paris", "--function", "hello", "--expression", "cron(0 12 * * ? *)",
			"--timezone", "Europe/Paris")
		if !strings.Contains(r.stdout, ":00:00 CE") { // CET or CEST
			t.Errorf("schedules create in Europe/Paris: %q does not name the zone", r.stdout)
		}
		r = n.mustCLI(0, "schedules", "create", "utc", "--function", "hello", "--expression", "rate(1 hour)")
		if !strings.Contains(r.stdout, " UTC") {
			t.Errorf("schedules create without a zone: %q does not say UTC", r.stdout)
		}
		r = n.mustCLI(0, "schedules", "ls")
		if !strings.Contains(r.stdout, "TIME ZONE") || !strings.Contains(r.stdout, "Europe/Paris") {
			t.Errorf("schedules ls lacks the time zone:\n%s", r.stdout)
		}
		r = n.mustCLI(0, "schedules", "get", "paris")
		if strings.HasPrefix(strings.TrimSpace(r.stdout), "{") || !containsSpaced(r.stdout, "time zone: Europe/Paris") ||
			!containsSpaced(r.stdout, "expression: cron(0 12 * * ? *)") {
			t.Errorf("schedules get in table mode:\n%s", r.stdout)
		}
		if r := n.mustCLI(0, "schedules", "get", "paris", "-o", "json"); !strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
			t.Errorf("schedules get -o json:\n%s", r.stdout)
		}
	})

	t.Run("events prints its header before any event", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, nimbusBin, "events")
		cmd.Env = append(os.Environ(), "NIMBUS_URL="+n.url, "NIMBUS_TOKEN="+n.token)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.Contains(line, "FUNCTION") || !strings.Contains(line, "STATUS") {
			t.Errorf("nimbus events printed %q (%v) first; want its header at once", line, err)
		}
	})

	t.Run("an e-mail subscription without an SMTP relay is refused on a server alone", func(t *testing.T) {
		r := n.cli("", "subscriptions", "create", "--on", "failure", "--email", "ops@example.com")
		if r.code != 3 || !strings.Contains(r.stderr, "--smtp-addr") || !strings.Contains(r.stderr, "400") {
			t.Errorf("e-mail subscription without --smtp-addr: exit %d, stderr %q; want 3 and a 400 naming --smtp-addr", r.code, r.stderr)
		}
		if r := n.mustCLI(0, "subscriptions", "ls"); strings.Contains(r.stdout, "ops@example.com") {
			t.Errorf("the refused subscription was stored:\n%s", r.stdout)
		}
	})

	t.Run("a wrong method answers 405 with Allow", func(t *testing.T) {
		code, h, body := n.do(http.MethodPatch, "/v1/functions/hello", "", nil)
		if code != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "DELETE") || !strings.Contains(h.Get("Allow"), "PUT") {
			t.Errorf("PATCH /v1/functions/hello: %d Allow %q %s", code, h.Get("Allow"), body)
		}
	})

	t.Run("server and bench help say the right things", func(t *testing.T) {
		r := n.mustCLI(0, "server", "--help")
		if strings.Contains(r.stdout, "API (and internal RPC)") || !strings.Contains(r.stdout, "internal RPC") {
			t.Errorf("server --help on --listen/--raft:\n%s", r.stdout)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, "--listen") && strings.Contains(line, "internal") {
				t.Errorf("server --help says --listen is internal: %q", line)
			}
		}
		if r := n.mustCLI(0, "bench", "--help"); strings.Contains(r.stdout, "issue") {
			t.Errorf("bench --help mentions an issue:\n%s", r.stdout)
		}
	})
}

// containsSpaced reports whether out has a line with want's words in
// order, however the table spaced them.
func containsSpaced(out, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.Join(strings.Fields(line), " "), w) {
			return true
		}
	}
	return false
}

// scripts/cluster-local takes a base port, and what it writes (the
// cluster's key among it) is ignored by git.
func TestClusterLocalTakesABasePort(t *testing.T) {
	if out, err := exec.Command("git", "check-ignore", "../.nimbus-cluster/token", "../.nimbus/admin.token").CombinedOutput(); err != nil {
		t.Errorf(".nimbus-cluster/ or .nimbus/ is not ignored by git: %v %s", err, out)
	}
	base := 0
	for range 20 { // a base whose nine ports are free a moment ago
		p, _ := strconv.Atoi(strings.TrimPrefix(freePort(t), "127.0.0.1:"))
		if p > 64000 {
			continue
		}
		b := p - 1
		if portsFree(b+1, b+2, b+3, b+101, b+102, b+103, b+201, b+202) {
			base = b
			break
		}
	}
	if base == 0 {
		t.Fatal("no free range of ports found")
	}
	dir := t.TempDir()
	cmd := exec.Command("../scripts/cluster-local", "--base-port", strconv.Itoa(base))
	cmd.Env = append(os.Environ(), "NIMBUS_CLUSTER_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("cluster-local did not stop within 60s of SIGINT")
		}
	})
	api := fmt.Sprintf("127.0.0.1:%d", base+1)
	waitFor(t, 5*time.Minute, "the local cluster answers on "+api+" with 3 servers and 2 workers", func() bool {
		select {
		case <-done:
			t.Fatalf("cluster-local exited:\n%s", out.String())
		default:
		}
		tok, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			return false
		}
		r := exec.Command(nimbusBin, "cluster")
		r.Env = append(os.Environ(), "NIMBUS_URL=http://"+api, "NIMBUS_TOKEN="+strings.TrimSpace(string(tok)))
		b, err := r.Output()
		if err != nil {
			return false
		}
		s := string(b)
		return strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", base+201)) && strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", base+202)) &&
			strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", base+3)) && strings.Count(s, " ready") == 2
	})
	if !strings.Contains(out.String(), api) {
		t.Errorf("cluster-local did not print the base port's addresses:\n%s", out.String())
	}
}

// portsFree reports whether each port on 127.0.0.1 can be listened on.
func portsFree(ports ...int) bool {
	for _, p := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
