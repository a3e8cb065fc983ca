package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
)

// scaffoldHandler is the main.py that `nimbus init` writes.
const scaffoldHandler = `"""A Nimbus function. Deploy it with "nimbus deploy ." from this directory."""


def handler(event, context):
    """Say hello to event["name"], or to the world."""
    name = "world"
    if isinstance(event, dict) and event.get("name"):
        name = str(event.get("name"))
    print(f"saying hello to {name} (request {context.aws_request_id})")
    return {"message": f"Hello, {name}!"}
`

// scaffoldManifest is the nimbus.yaml that `nimbus init` writes; %s is the
// function name. Runtime is left out so the worker's newest Python is used.
const scaffoldManifest = `name: %s
# runtime: python3.12   # default: the newest python3 the workers have
handler: main.handler
memory: 128             # MB, 128..10240
timeout: 3s             # 1s..900s
`

func (a *app) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init NAME",
		Short: "Create a new function directory NAME with a hello handler",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := codepkg.ValidateConfig(model.FunctionConfig{Name: name}); err != nil {
				return usagef("%v", err)
			}
			dir := a.path(name)
			if _, err := os.Lstat(dir); err == nil {
				return usagef("%s already exists; pick another name or remove it", name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return usagef("%v", err)
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				return usagef("%v", err)
			}
			files := []struct{ name, body string }{
				{"main.py", scaffoldHandler},
				{"nimbus.yaml", fmt.Sprintf(scaffoldManifest, name)},
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
					return usagef("%v", err)
				}
			}
			if a.json() {
				return printJSON(a.env.Stdout, map[string]any{"name": name, "dir": name, "files": []string{"main.py", "nimbus.yaml"}})
			}
			fmt.Fprintf(a.env.Stdout, "Created %s/main.py and %s/nimbus.yaml.\n\nNext:\n  nimbus deploy %s\n  nimbus invoke %s --data '{\"name\": \"you\"}'\n", name, name, name, name)
			return nil
		},
	}
}
