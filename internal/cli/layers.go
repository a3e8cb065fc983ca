package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/internal/codepkg"
)

func (a *app) layersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layers",
		Short: "Publish, list, show and remove layers: shared files functions mount",
		Long: `A layer is a zip of files that functions mount read-only, as on Lambda: Python
packages go under python/ (python/NAME/... or python/lib/python3.X/site-packages/),
and a function that mounts the layer imports them. Each publish makes a new,
immutable version (1, 2, ...). A function mounts up to 5 layers (layers: in
nimbus.yaml, or deploy --layer NAME:VERSION), on sys.path after its own code, in
the order given, then its dependency layer (requirements.txt). A layer version a
function mounts cannot be removed.`,
		Args: usageArgs(cobra.NoArgs),
	}
	var runtimes []string
	var description string
	publish := &cobra.Command{
		Use:   "publish NAME DIR|ZIP",
		Short: "Publish a directory or a zip as the next version of a layer",
		Example: `  nimbus layers publish common ./common-layer --runtime python3.11
  nimbus deploy ./app --layer common:1`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.path(args[1])
			fi, err := os.Stat(path)
			if err != nil {
				return usagef("%v", err)
			}
			var zip []byte
			if fi.IsDir() {
				zip, err = codepkg.ZipDir(path, codepkg.LayerLimits(), a.progressPrinter()("Packaging"))
			} else if strings.EqualFold(fi.Name()[max(0, len(fi.Name())-4):], ".zip") {
				zip, err = os.ReadFile(path)
			} else {
				return usagef("%s is neither a directory nor a .zip file", args[1])
			}
			if err != nil {
				return usagef("%v", err)
			}
			l, err := a.client().PublishLayer(cmd.Context(), args[0], zip, runtimes, description)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, l)
			}
			fmt.Fprintf(a.env.Stdout, "published %s:%d (%s, %s unpacked, sha256 %s)\n", l.Name, l.Version, humanBytes(l.Size), humanBytes(l.Unpacked), shortDigest(l.SHA256))
			return nil
		},
	}
	publish.Flags().StringArrayVar(&runtimes, "runtime", nil, "a runtime the layer is built for, python3.X (repeatable; default: any)")
	publish.Flags().StringVar(&description, "description", "", "what the layer holds")

	ls := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List the layers' versions",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			layers, err := a.client().Layers(cmd.Context(), name)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, layers)
			}
			t := newTable(a.env.Stdout, "LAYER", "VERSION", "RUNTIMES", "SIZE", "UNPACKED", "CREATED", "DESCRIPTION")
			for _, l := range layers {
				rts := strings.Join(l.Runtimes, ", ")
				if rts == "" {
					rts = "any"
				}
				t.row(l.Name, strconv.FormatInt(l.Version, 10), rts, humanBytes(l.Size), humanBytes(l.Unpacked), humanTime(l.CreatedAt), l.Description)
			}
			return t.flush()
		},
	}
	get := &cobra.Command{
		Use:   "get NAME[:VERSION]",
		Short: "Show a layer's version (the latest without :VERSION)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version := args[0], int64(0)
			if strings.Contains(name, ":") {
				var err error
				if name, version, err = codepkg.ParseLayerRef(args[0]); err != nil {
					return usagef("%v", err)
				}
			}
			l, err := a.client().GetLayer(cmd.Context(), name, version)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, l)
			}
			t := newTable(a.env.Stdout)
			t.row("layer:", fmt.Sprintf("%s:%d", l.Name, l.Version))
			t.row("runtimes:", strings.Join(l.Runtimes, ", "))
			t.row("sha256:", l.SHA256)
			t.row("size:", humanBytes(l.Size)+" ("+humanBytes(l.Unpacked)+" unpacked)")
			t.row("created:", humanTime(l.CreatedAt))
			if l.Description != "" {
				t.row("description:", l.Description)
			}
			return t.flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME:VERSION",
		Short: "Remove a layer version no function mounts",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := codepkg.ParseLayerRef(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			if err := a.client().DeleteLayer(cmd.Context(), name, version); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "removed %s:%d\n", name, version)
			return nil
		},
	}
	cmd.AddCommand(publish, ls, get, rm)
	return cmd
}
