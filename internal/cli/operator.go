package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/internal/backup"
	"nimbus/internal/controlplane"
)

func (a *app) operatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Operate the cluster: backups and disaster recovery (admin)",
		Args:  usageArgs(cobra.NoArgs),
	}
	snapshot := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, inspect and restore backups of the cluster",
		Long: `A backup is one file: a Raft snapshot of the cluster's state (functions, versions,
keys, schedules and the slots they fired, queued events, records, ...) and every
code package and layer it names, each checksummed. It restores into the cluster
it came from or into a fresh one (docs/operations.md).`,
		Args: usageArgs(cobra.NoArgs),
	}
	save := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a backup of the cluster to FILE",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.path(args[0])
			tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
			if err != nil {
				return usagef("%v", err)
			}
			defer os.Remove(tmp.Name())
			w := io.Writer(tmp)
			if a.env.IsTerminal(a.env.Stderr) {
				w = &receivedPrinter{w: tmp, out: a.env.Stderr}
			}
			if _, err := a.client().SaveSnapshot(cmd.Context(), w); err != nil {
				tmp.Close()
				return a.platform(err)
			}
			if a.env.IsTerminal(a.env.Stderr) {
				fmt.Fprintln(a.env.Stderr)
			}
			if err := tmp.Sync(); err != nil {
				tmp.Close()
				return a.platform(err)
			}
			if _, err := tmp.Seek(0, io.SeekStart); err != nil {
				tmp.Close()
				return a.platform(err)
			}
			m, _, err := backup.Read(tmp, nil)
			tmp.Close()
			if err != nil {
				return a.platform(fmt.Errorf("the backup the server sent does not check out, so it was not kept: %w", err))
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, m)
			}
			fmt.Fprintf(a.env.Stdout, "saved %s: index %d, term %d, %s in %d blobs and the state, checked\n", args[0], m.Index, m.Term, humanBytes(m.Size()), len(m.Blobs))
			return nil
		},
	}
	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Check a backup and say what it holds",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(a.path(args[0]))
			if err != nil {
				return usagef("%v", err)
			}
			defer f.Close()
			m, _, err := backup.Read(f, nil)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, m)
			}
			t := newTable(a.env.Stdout)
			t.row("taken:", humanTime(m.CreatedAt)+" on "+m.Server)
			t.row("index:", fmt.Sprint(m.Index))
			t.row("term:", fmt.Sprint(m.Term))
			t.row("size:", fmt.Sprintf("%s (state %s, %d blobs)", humanBytes(m.Size()), humanBytes(m.State.Size), len(m.Blobs)))
			t.row("checksums:", "all match")
			kinds := make([]string, 0, len(m.Counts))
			for k := range m.Counts {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			for _, k := range kinds {
				t.row(strings.ReplaceAll(k, "_", " ")+":", fmt.Sprint(m.Counts[k]))
			}
			return t.flush()
		},
	}
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's state with a backup's",
		Long: `Restore checks the whole backup, stores its code packages and layers on the
servers, then replaces the cluster's state with the backup's: what was written
since the backup was taken is gone. Keys and users become the backup's, so use
a key of the cluster the backup came from afterwards. The request goes to the
leader (a follower names it).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.path(args[0])
			f, err := os.Open(path)
			if err != nil {
				return usagef("%v", err)
			}
			m, _, err := backup.Read(f, nil)
			f.Close()
			if err != nil {
				return a.platform(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				return usagef("%v", err)
			}
			progress := a.progressPrinter()("Sending")
			var open *os.File
			defer func() {
				if open != nil {
					open.Close()
				}
			}()
			out, err := a.client().RestoreSnapshot(cmd.Context(), func() (io.Reader, error) {
				if open != nil {
					open.Close()
				}
				open, err = os.Open(path)
				if err != nil {
					return nil, err
				}
				return &sentReader{r: open, total: fi.Size(), progress: progress}, nil
			})
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, out)
			}
			fmt.Fprintf(a.env.Stdout, "restored %s (index %d, term %d, taken %s): the cluster's state is the backup's\n", args[0], m.Index, m.Term, humanTime(m.CreatedAt))
			fmt.Fprintln(a.env.Stderr, "nimbus: keys and users are now the backup's: use a key of the cluster it came from")
			return nil
		},
	}
	snapshot.AddCommand(save, inspect, restore)
	cmd.AddCommand(snapshot, a.raftCommand())
	return cmd
}

func (a *app) raftCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Repair a cluster's Raft membership by hand (disaster recovery)",
		Args:  usageArgs(cobra.NoArgs),
	}
	var (
		data    string
		servers []string
		force   bool
	)
	recover := &cobra.Command{
		Use:   "recover --data DIR --server ID=RAFT_ADDRESS [--server ...]",
		Short: "Make a stopped server's data that of a new cluster of the servers given",
		Long: `When a majority of the servers is lost for good, the others cannot elect a leader
and the cluster takes no writes. Stop every surviving server, run this on each with
the same list of survivors (each one's --node-id and --raft address), and start
them again: they form a cluster of their own with the data they had. Writes the
lost servers had committed that no survivor received are gone. It works on the
data directory of a stopped server (offline; no API key). docs/operations.md has
the whole procedure.`,
		Example: `  nimbus operator raft recover --data /var/lib/nimbus --server s1=10.0.0.1:7000`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || len(servers) == 0 {
				return usagef("give the server's data directory (--data) and the survivors (--server ID=RAFT_ADDRESS, repeated)")
			}
			var peers []controlplane.Peer
			for _, s := range servers {
				id, addr, ok := strings.Cut(s, "=")
				if !ok || id == "" || addr == "" {
					return usagef("--server %q is not ID=RAFT_ADDRESS", s)
				}
				peers = append(peers, controlplane.Peer{ID: id, Raft: addr})
			}
			if err := controlplane.Recover(a.path(data), peers, force, slog.New(slog.DiscardHandler)); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "recovered %s: its cluster is now %s; start the server again (and every other survivor, recovered with the same list)\n", data, strings.Join(servers, ", "))
			return nil
		},
	}
	recover.Flags().StringVar(&data, "data", "", "the stopped server's data directory")
	recover.Flags().StringArrayVar(&servers, "server", nil, "a server of the recovered cluster, ID=RAFT_ADDRESS (repeatable; this one included)")
	recover.Flags().BoolVar(&force, "force", false, "recover even though a majority of the servers answers (they would form a second cluster)")
	cmd.AddCommand(recover)
	return cmd
}

// receivedPrinter writes through to w and shows the bytes received.
type receivedPrinter struct {
	w          io.Writer
	out        io.Writer
	n, printed int64
}

func (p *receivedPrinter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n-p.printed >= 1<<20 {
		p.printed = p.n
		fmt.Fprintf(p.out, "\rReceived %s\033[K", humanBytes(p.n))
	}
	return n, err
}

// sentReader reads r and tells progress how much of total was read.
type sentReader struct {
	r        io.Reader
	n, total int64
	progress func(done, total int64)
}

func (s *sentReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	s.n += int64(n)
	if s.progress != nil && n > 0 {
		s.progress(s.n, s.total)
	}
	return n, err
}
