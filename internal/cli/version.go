package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is the module version of the binary, or "dev".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// buildCommit is the VCS revision the binary was built from, if recorded.
func buildCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := struct {
				Version string `json:"version"`
				Commit  string `json:"commit,omitempty"`
				Go      string `json:"go"`
				OS      string `json:"os"`
				Arch    string `json:"arch"`
			}{buildVersion(), buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH}
			if a.json() {
				return printJSON(a.env.Stdout, v)
			}
			commit := ""
			if v.Commit != "" {
				commit = " " + v.Commit[:min(12, len(v.Commit))]
			}
			_, err := fmt.Fprintf(a.env.Stdout, "nimbus %s%s (%s %s/%s)\n", v.Version, commit, v.Go, v.OS, v.Arch)
			return err
		},
	}
}
