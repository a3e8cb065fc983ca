package cli

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/codepkg"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// deployFlags are the flags of `nimbus deploy` that override the manifest.
type deployFlags struct {
	name, handler, runtime, timeout, description string
	memory, ephemeral, provisioned, reserved     int
	env, layers                                  []string
}

func (a *app) deployCommand() *cobra.Command {
	var fl deployFlags
	cmd := &cobra.Command{
		Use:   "deploy PATH",
		Short: "Create or update a function from a directory or a .zip file",
		Long: "Create or update a function from PATH, a directory (zipped on the fly) or a\n" +
			".zip file. Settings come from PATH/nimbus.yaml, overridden by flags; without a\n" +
			"manifest the name defaults to the directory's name.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.deploy(cmd, args[0], fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.name, "name", "", "function name")
	f.StringVar(&fl.handler, "handler", "", "handler as module.function (default main.handler)")
	f.StringVar(&fl.runtime, "runtime", "", "runtime, python3.X (default: the newest available)")
	f.IntVar(&fl.memory, "memory", 0, "memory in MB, 128..10240 (default 128)")
	f.StringVar(&fl.timeout, "timeout", "", "timeout, e.g. 30s or 2m (default 3s)")
	f.IntVar(&fl.ephemeral, "ephemeral-storage", 0, "size of /tmp in MB, 512..10240 (default 512)")
	f.StringVar(&fl.description, "description", "", "description")
	f.StringArrayVar(&fl.env, "env", nil, "environment variable K=V (repeatable)")
	f.IntVar(&fl.provisioned, "provisioned", 0, "instances kept ready at all times (provisioned concurrency)")
	f.IntVar(&fl.reserved, "reserved-concurrency", 0, "most invocations at once, reserved from the namespace's limit")
	f.StringArrayVar(&fl.layers, "layer", nil, "a published layer to mount, NAME:VERSION (repeatable, in sys.path order; replaces the manifest's layers)")
	return cmd
}

func (a *app) deploy(cmd *cobra.Command, path string, fl deployFlags) error {
	path = a.path(path)
	fi, err := os.Stat(path)
	if err != nil {
		return usagef("%v", err)
	}
	var cfg client.FunctionConfig
	isZip := !fi.IsDir()
	if isZip {
		if !strings.EqualFold(filepath.Ext(path), ".zip") {
			return usagef("%s is neither a directory nor a .zip file", path)
		}
		cfg.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	} else {
		m, found, err := codepkg.LoadManifest(path)
		if err != nil {
			return usagef("%v", err)
		}
		if found {
			cfg = m
		}
		if cfg.Name == "" {
			abs, err := filepath.Abs(path)
			if err != nil {
				return usagef("%v", err)
			}
			cfg.Name = filepath.Base(abs)
		}
	}
	if err := applyDeployFlags(cmd, &cfg, fl); err != nil {
		return err
	}
	if err := codepkg.ValidateConfig(wire.ModelFunctionConfig(cfg)); err != nil {
		return usagef("%v", err)
	}

	progress := a.progressPrinter()
	var zip []byte
	if isZip {
		if zip, err = os.ReadFile(path); err != nil {
			return usagef("%v", err)
		}
	} else {
		zip, err = codepkg.ZipDir(path, codepkg.DefaultLimits(), progress("Packaging"))
		if err != nil {
			return usagef("%v", err)
		}
	}
	cfg.Source = sourceOf(path)
	// The revision this deploy replaces, if any, to say so when its code
	// came from somewhere else (two directories of the same name).
	prev, prevErr := a.client().GetFunction(cmd.Context(), cfg.Name)
	opts := client.DeployOptions{Progress: progress("Uploading")}
	if a.env.IsTerminal(a.env.Stderr) {
		lines := &linePrefixer{w: a.env.Stderr, prefix: "build | "}
		defer lines.flush()
		opts.BuildLog = lines
	}
	fn, created, err := a.client().Deploy(cmd.Context(), cfg, zip, opts)
	if err != nil {
		return a.platform(err)
	}
	if prevErr == nil && !created && prev.Source != "" && prev.Source != cfg.Source {
		fmt.Fprintf(a.env.Stderr, "nimbus: replaced function %s (revision %d came from %s; revision %d from %s)\n",
			fn.Name, prev.Revision, prev.Source, fn.Revision, cfg.Source)
	}
	if a.json() {
		return printJSON(a.env.Stdout, fn)
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	t := newTable(a.env.Stdout)
	t.row("name:", fn.Name)
	if fn.Namespace != "" && fn.Namespace != client.DefaultNamespace {
		t.row("namespace:", fn.Namespace)
	}
	t.row("revision:", strconv.FormatInt(fn.Revision, 10)+" ("+verb+")")
	t.row("code sha256:", fn.CodeSHA256)
	t.row("code size:", humanBytes(fn.CodeSize))
	if s := scanSummary(fn.Scan); s != "" {
		t.row("code scan:", s)
	}
	for _, r := range layerRows(fn) {
		t.row(r[0], r[1])
	}
	return t.flush()
}

// layerRows describe what a function mounts: its published layers and
// its dependency layer.
func layerRows(fn client.Function) [][2]string {
	var rows [][2]string
	for _, l := range fn.LayerRefs {
		rows = append(rows, [2]string{"layer:", fmt.Sprintf("%s:%d (%s unpacked, at /opt/layers/%s)", l.Name, l.Version, humanBytes(l.Unpacked), l.Name)})
	}
	if d := fn.Deps; d != nil {
		rows = append(rows, [2]string{"dependencies:", strings.Join(d.Packages, " ")},
			[2]string{"dependency layer:", fmt.Sprintf("%s (%s, %s unpacked, at /opt/python)", shortDigest(d.SHA256), humanBytes(d.Size), humanBytes(d.Unpacked))})
	}
	return rows
}

// shortDigest is the first 12 hex digits of a digest.
func shortDigest(d string) string { return d[:min(12, len(d))] }

// linePrefixer writes each complete line it is given to w behind prefix.
type linePrefixer struct {
	w       io.Writer
	prefix  string
	partial []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, bytes.TrimRight(l.partial[:i], "\r"))
		l.partial = l.partial[i+1:]
	}
}

// flush writes what is left of a last line without its newline.
func (l *linePrefixer) flush() {
	if len(l.partial) > 0 {
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.partial)
		l.partial = nil
	}
}

// applyDeployFlags overrides cfg with the flags the user set.
// sourceOf names where code is deployed from: this host and the
// absolute path.
func sourceOf(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return path
	}
	return host + ":" + path
}

func applyDeployFlags(cmd *cobra.Command, cfg *client.FunctionConfig, fl deployFlags) error {
	set := cmd.Flags().Changed
	if set("name") {
		cfg.Name = fl.name
	}
	if set("handler") {
		cfg.Handler = fl.handler
	}
	if set("runtime") {
		cfg.Runtime = fl.runtime
	}
	if set("memory") {
		cfg.MemoryMB = fl.memory
	}
	if set("ephemeral-storage") {
		cfg.EphemeralMB = fl.ephemeral
	}
	if set("description") {
		cfg.Description = fl.description
	}
	if set("provisioned") {
		cfg.Provisioned = fl.provisioned
	}
	if set("reserved-concurrency") {
		cfg.ReservedConcurrency = &fl.reserved
	}
	if set("layer") {
		cfg.Layers = fl.layers
	}
	if set("timeout") {
		d, err := parseTimeout(fl.timeout)
		if err != nil {
			return err
		}
		cfg.Timeout = client.Duration(d)
	}
	if len(fl.env) > 0 {
		env := maps.Clone(cfg.Env)
		if env == nil {
			env = map[string]string{}
		}
		for _, kv := range fl.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--env %q: want KEY=VALUE", kv)
			}
			env[k] = v
		}
		cfg.Env = env
	}
	return nil
}

// parseTimeout reads "30s", "2m" or a bare number of seconds.
func parseTimeout(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, usagef("--timeout %q: want a duration such as 30s or 2m", s)
	}
	return d, nil
}

// progressPrinter returns a factory of progress callbacks that draw a
// one-line meter on stderr, or of nil callbacks when stderr is not a
// terminal.
func (a *app) progressPrinter() func(label string) func(done, total int64) {
	if !a.env.IsTerminal(a.env.Stderr) {
		return func(string) func(int64, int64) { return nil }
	}
	return func(label string) func(done, total int64) {
		finished := false
		return func(done, total int64) {
			if finished {
				return
			}
			pct := 100
			if total > 0 {
				pct = int(done * 100 / total)
			}
			fmt.Fprintf(a.env.Stderr, "\r%s %s / %s (%d%%)\033[K", label, humanBytes(done), humanBytes(total), pct)
			if done >= total {
				finished = true
				fmt.Fprintln(a.env.Stderr)
			}
		}
	}
}
