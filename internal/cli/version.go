package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// binaryVersion is what the build info says of the binary: the module
// version (a pseudo-version such as v0.0.0-20261202162449-62db646697ba
// when the main module was built in a git checkout), the VCS revision,
// its time and whether the tree had local changes.
type binaryVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	// Note says why there is no version or commit, when there is none.
	Note string `json:"note,omitempty"`
}

// noVCSNote explains a binary without a version: `go run` and
// -buildvcs=false (also in GOFLAGS) build without version control
// information.
const noVCSNote = "built without version control information (go run, or -buildvcs=false): " +
	"go build -o nimbus ./cmd/nimbus or go install ./cmd/nimbus in a git checkout stamps the version and commit"

// versionOf reads bi (nil when the binary has no build info).
func versionOf(bi *debug.BuildInfo) binaryVersion {
	v := binaryVersion{Version: "dev", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi == nil {
		v.Note = noVCSNote
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Commit == "" && v.Version == "dev" {
		v.Note = noVCSNote
	}
	return v
}

// buildVersion is the module version of the binary, or "dev".
func buildVersion() string { return currentVersion().Version }

func currentVersion() binaryVersion {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionOf(bi)
}

// String is the one-line form `nimbus version` prints.
func (v binaryVersion) String() string {
	s := "nimbus " + v.Version
	if v.Commit != "" {
		s += " " + v.Commit[:min(12, len(v.Commit))]
		if v.Modified {
			s += "+modified"
		}
		if v.Time != "" {
			s += " (" + v.Time + ")"
		}
	}
	s += fmt.Sprintf(" %s %s/%s", v.Go, v.OS, v.Arch)
	if v.Note != "" {
		s += "\n" + v.Note
	}
	return s
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit of this binary",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := currentVersion()
			if a.json() {
				return printJSON(a.env.Stdout, v)
			}
			_, err := fmt.Fprintln(a.env.Stdout, v.String())
			return err
		},
	}
}
