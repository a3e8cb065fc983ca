package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// CommandFlags returns every flag the command at path takes, its own and
// those it inherits ("server" for nimbus server, "cluster", "scaling" for
// nimbus cluster scaling), for checks of what others write against the
// CLI, such as the Kubernetes manifests' container arguments. The flags
// are those of a fresh command: parsing into them changes nothing else.
func CommandFlags(path ...string) (*pflag.FlagSet, error) {
	a := &app{env: Env{Getenv: func(string) string { return "" }}}
	cmd, rest, err := a.rootCommand().Find(path)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 || cmd.Name() != path[len(path)-1] {
		return nil, fmt.Errorf("nimbus has no command %q", strings.Join(path, " "))
	}
	fs := pflag.NewFlagSet(cmd.CommandPath(), pflag.ContinueOnError)
	fs.AddFlagSet(cmd.Flags())
	fs.AddFlagSet(cmd.InheritedFlags())
	return fs, nil
}
