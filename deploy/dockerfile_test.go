// Package deploy holds what runs Nimbus elsewhere than from a checkout:
// the Kubernetes manifests (deploy/kubernetes) and, at the repository's
// root, the Dockerfile, which the test here checks since no image can be
// built where the tests run.
package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
}

// stage is a FROM and what follows it up to the next.
type stage struct {
	image, name string
	body        []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages []stage
		line   string
	)
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			line += c + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s before the first FROM", in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func TestTheDockerfileBuildsAStaticNimbusIntoADebianImageWithPython(t *testing.T) {
	stages := parseDockerfile(t, "../Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build and a runtime stage", len(stages))
	}
	build, run := stages[0], stages[1]

	// The builder's Go is the go.mod's (major.minor).
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVersion == nil || !strings.HasPrefix(build.image, "golang:"+string(goVersion[1])) {
		t.Errorf("the builder is %s; go.mod wants Go %s", build.image, goVersion[1])
	}

	// The build command: static, trimmed, of cmd/nimbus, to one output.
	var out string
	for _, r := range build.all("RUN") {
		if !strings.Contains(r, "go build") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/nimbus"} {
			if !strings.Contains(r, want) {
				t.Errorf("the build %q lacks %s", r, want)
			}
		}
		if m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(r); m != nil {
			out = m[1]
		}
	}
	if out == "" {
		t.Fatal("no go build -o OUTPUT in the build stage")
	}

	// The runtime stage copies that output onto the PATH as nimbus.
	if run.image != "debian:12-slim" {
		t.Errorf("the runtime image is %s, want debian:12-slim", run.image)
	}
	copied := false
	for _, c := range run.all("COPY") {
		f := strings.Fields(c)
		if len(f) == 3 && f[0] == "--from="+build.name && f[1] == out && f[2] == "/usr/local/bin/nimbus" {
			copied = true
		}
	}
	if build.name == "" || !copied {
		t.Errorf("the runtime stage does not COPY --from=%s %s /usr/local/bin/nimbus", build.name, out)
	}
	if !strings.Contains(strings.Join(run.all("RUN"), " "), "python3") {
		t.Error("the runtime image installs no python3, which functions run on")
	}
	var entry []string
	if e := run.all("ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil || len(entry) != 1 || entry[0] != "nimbus" {
		t.Errorf(`ENTRYPOINT is %q, want ["nimbus"]`, run.all("ENTRYPOINT"))
	}
	if u := run.all("USER"); len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("the image's default user is %q, want an unprivileged one (the worker's pod asks for root)", u)
	}
}

func TestTheDockerIgnoreKeepsWhatTheBuildNeeds(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.Trim(strings.TrimSpace(l), "/")
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "pkg"} {
			if l == needed || l == "*" || l == "**" {
				t.Errorf(".dockerignore leaves out %s, which the build needs", needed)
			}
		}
	}
}
