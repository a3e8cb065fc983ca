package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionShowsModuleVersionAndCommit(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "nimbus", Version: "v0.0.0-20261202162449-62db646697ba"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "62db646697ba2a7787a7c940e4ae7779333ee989"},
			{Key: "vcs.time", Value: "2026-12-02T16:24:49Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	v := versionOf(bi)
	s := v.String()
	for _, want := range []string{"v0.0.0-20261202162449-62db646697ba", "62db646697ba+modified", "2026-12-02T16:24:49Z"} {
		if !strings.Contains(s, want) {
			t.Errorf("version %q lacks %q", s, want)
		}
	}
	if v.Note != "" {
		t.Errorf("a stamped binary has a note: %q", v.Note)
	}
}

// A binary without version control information (go run, -buildvcs=false)
// says why it prints no version, and how to get one.
func TestVersionWithoutVCSInformationSaysHowToGetIt(t *testing.T) {
	for _, bi := range []*debug.BuildInfo{nil, {Main: debug.Module{Path: "nimbus", Version: "(devel)"}}} {
		s := versionOf(bi).String()
		if !strings.HasPrefix(s, "nimbus dev") || !strings.Contains(s, "go build -o nimbus ./cmd/nimbus") {
			t.Errorf("version without VCS information: %q", s)
		}
	}
}

// `nimbus version` prints the line.
func TestVersionCommand(t *testing.T) {
	var out strings.Builder
	code := Run(Env{Args: []string{"version"}, Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
	if code != 0 || !strings.HasPrefix(out.String(), "nimbus ") {
		t.Errorf("nimbus version: exit %d, %q", code, out.String())
	}
}
