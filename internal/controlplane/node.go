// Package controlplane owns the Raft node of a server: start-up on disk,
// bootstrap, applying commands, leadership and the membership view.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"nimbus/internal/datadir"
	"nimbus/internal/fsm"
	"nimbus/internal/rpc"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// ErrNotLeader is returned when a write reaches a server that is not the
// leader and cannot forward it, or when there is no leader.
var ErrNotLeader = errors.New("no leader: the control plane cannot accept writes right now")

// Config configures a Node.
type Config struct {
	NodeID  string
	DataDir string // the node keeps raft/ below it
	// Transport carries Raft traffic. Nil gives an in-memory transport,
	// which is enough for a single voter (nimbus dev).
	Transport raft.Transport
	// Bootstrap makes a node with no existing state bootstrap a cluster
	// of itself.
	Bootstrap bool
	Log       *slog.Logger
	// RaftLog receives hashicorp/raft's own log lines (warnings and
	// errors); nil means stderr.
	RaftLog io.Writer
	// SingleNode shortens Raft's timeouts: with one voter there is nobody
	// to wait for, so a restart need not sit out a heartbeat timeout
	// before electing itself.
	SingleNode bool
	// HeartbeatTimeout is how long a follower hears nothing from the
	// leader before it calls an election (raft randomises it up to twice
	// that); the leader's lease and the candidates' election timeout are
	// the same. 0 means DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// RPC reaches the other servers (to forward writes to the leader);
	// nil for a single node.
	RPC *rpc.Pool
	// Disk classifies the write errors of a full data directory (counted,
	// logged at most once a minute, answered as datadir.ErrFull without
	// host paths); nil makes one of DataDir.
	Disk *datadir.Monitor
}

// DefaultHeartbeatTimeout is the servers' Raft heartbeat and election
// timeout unless --raft-heartbeat-timeout says otherwise: hashicorp/raft's
// default. Half of it halves a failover where the machines have CPU to
// spare (bench/failover, 15 kills: the first write p50 1.1 s and p99
// 1.5 s, against 2.0 s and 2.8 s); under bench/scale's load on two busy
// cores the leader missed its lease at either setting, and a shorter
// timeout only adds elections there.
const DefaultHeartbeatTimeout = time.Second

// SetHeartbeatTimeout sets rc's timeouts as a server's heartbeat timeout
// hb sets them (0: DefaultHeartbeatTimeout): the heartbeat and election
// timeouts hb, the leader's lease at most hb.
func SetHeartbeatTimeout(rc *raft.Config, hb time.Duration) {
	if hb <= 0 {
		hb = DefaultHeartbeatTimeout
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = hb, hb, min(hb, rc.LeaderLeaseTimeout)
}

// initialMmapSize is the address space the Raft log database maps from
// the start. bbolt otherwise maps 32 kB and doubles the mapping as the
// file grows, each time an munmap and mmap of the whole file under its
// mmap lock, after a truncate and fsync of the file to the new size: in a
// new node's first few thousand invocations, about ten of them, each
// beside an invocation in progress. With the larger mapping the file grows
// in 16 MB steps (sparse) and is remapped only past 64 MB. Only address
// space: the file's pages in memory still follow the data.
const initialMmapSize = 64 << 20

// Node is a running Raft member with its FSM and state store.
type Node struct {
	id        string
	raft      *raft.Raft
	applied   *appliedFSM
	store     *state.Store
	logStore  *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	transport raft.Transport
	rpc       *rpc.Pool
	disk      *datadir.Monitor
	log       *slog.Logger

	budget     *logBudget
	stopBudget context.CancelFunc

	began      time.Time   // when Start began
	caughtUp   atomic.Bool // see CaughtUp
	catchingUp atomic.Bool // an attempt to catch up runs
}

// Start opens (or creates) the node's Raft data and starts it.
func Start(cfg Config) (*Node, error) {
	began := time.Now()
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	boltOpts := *bbolt.DefaultOptions
	boltOpts.InitialMmapSize = initialMmapSize
	boltStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &boltOpts})
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	rlog := cfg.RaftLog
	if rlog == nil {
		rlog = os.Stderr
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsKept, hclog.New(&hclog.LoggerOptions{Name: "raft-snapshots", Output: rlog, Level: hclog.Warn}))
	if err != nil {
		boltStore.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	transport := cfg.Transport
	if transport == nil {
		_, transport = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: rlog, Level: hclog.Warn})
	SetHeartbeatTimeout(rc, cfg.HeartbeatTimeout)
	if cfg.SingleNode {
		rc.HeartbeatTimeout = 50 * time.Millisecond
		rc.ElectionTimeout = 50 * time.Millisecond
		rc.LeaderLeaseTimeout = 50 * time.Millisecond
		rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: rlog, Level: hclog.Error})
	}
	rc.SnapshotThreshold = 4096
	rc.TrailingLogs = 2048

	store := state.New()
	budget := &logBudget{}
	var newest raft.SnapshotMeta
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		newest = *list[0]
		budget.snapshot.Store(list[0].Size)
	}
	opened := time.Since(began)
	applied := &appliedFSM{FSM: fsm.New(store, cfg.Log), budget: budget}
	r, err := raft.NewRaft(rc, applied, countingLogStore{LogStore: boltStore, budget: budget}, boltStore, snaps, transport)
	if err != nil {
		boltStore.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	// The start-up's phases, for restart-to-serving (bench/scale reads
	// this line): opening raft.db and the snapshot store, restoring the
	// newest snapshot into the state store (within NewRaft), and the rest
	// of NewRaft (reading the log after the snapshot for configuration
	// changes).
	cfg.Log.Info("raft state loaded", "took", time.Since(began).Round(time.Millisecond), "open", opened.Round(time.Millisecond),
		"restore", time.Duration(applied.restoreTook.Load()).Round(time.Millisecond), "snapshot_index", newest.Index, "snapshot_bytes", newest.Size,
		"last_index", r.LastIndex())
	disk := cfg.Disk
	if disk == nil {
		disk = datadir.New(cfg.DataDir, cfg.Log)
	}
	n := &Node{id: cfg.NodeID, raft: r, applied: applied, store: store, logStore: boltStore, snaps: snaps, transport: transport, rpc: cfg.RPC, disk: disk, log: cfg.Log, budget: budget, began: began}
	budgetCtx, stopBudget := context.WithCancel(context.Background())
	n.stopBudget = stopBudget
	go n.keepLogWithinBudget(budgetCtx)
	if cfg.Bootstrap {
		existing, err := raft.HasExistingState(boltStore, boltStore, snaps)
		if err != nil {
			n.Shutdown()
			return nil, err
		}
		if !existing {
			f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
				{Suffrage: raft.Voter, ID: rc.LocalID, Address: transport.LocalAddr()},
			}})
			if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				n.Shutdown()
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	return n, nil
}

// Disk returns the monitor of the node's data directory.
func (n *Node) Disk() *datadir.Monitor { return n.disk }

// Store returns the node's state store (read-only for callers).
func (n *Node) Store() *state.Store { return n.store }

func isLeadershipError(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// WaitLeader waits until the cluster has a leader and, if this node is
// it, until everything committed before is applied (raft.Barrier).
func (n *Node) WaitLeader(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			if n.IsLeader() {
				err := n.raft.Barrier(time.Until(deadline(ctx))).Error()
				if err == nil {
					n.caughtUp.Store(true) // everything committed before is applied
				}
				return err
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}

// Servers describes the Raft configuration as this node sees it.
func (n *Node) Servers(apiAddr func(id string) string) []client.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	_, leaderID := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	var out []client.Server
	for _, s := range f.Configuration().Servers {
		srv := client.Server{ID: string(s.ID), Raft: string(s.Address), Role: "follower"}
		if s.Suffrage != raft.Voter {
			srv.Role = "nonvoter"
		}
		if s.ID == leaderID {
			srv.Role = "leader"
		}
		if string(s.ID) == n.id {
			srv.Healthy = true
			srv.Term = parseUint(stats["term"])
			srv.LastIndex = parseUint(stats["last_log_index"])
			if n.raft.State() == raft.Candidate {
				srv.Role = "candidate"
			}
		} else {
			srv.Healthy = leaderID != ""
		}
		if apiAddr != nil {
			srv.Address = apiAddr(string(s.ID))
		}
		out = append(out, srv)
	}
	return out
}

func parseUint(s string) uint64 {
	var v uint64
	fmt.Sscanf(s, "%d", &v)
	return v
}

// shutdownWait bounds how long Shutdown waits for Raft to stop.
const shutdownWait = 10 * time.Second

// Shutdown stops Raft and closes its stores. A leader whose replication
// to a follower is stuck on a connection that neither answers nor closes
// (hashicorp/raft's pipelined AppendEntries waits without a deadline) can
// wait forever to stop: after shutdownWait, Shutdown gives up waiting,
// closes the transport, and leaves the log store open for the process's
// exit to release, rather than closing it under a goroutine that may
// still use it.
func (n *Node) Shutdown() error {
	if n.stopBudget != nil {
		n.stopBudget()
	}
	done := make(chan error, 1)
	go func() { done <- n.raft.Shutdown().Error() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(shutdownWait):
		n.log.Warn("raft did not stop within the shutdown wait: leaving it to the process's exit", "wait", shutdownWait)
		if c, ok := n.transport.(io.Closer); ok {
			c.Close()
		}
		return fmt.Errorf("controlplane: raft did not stop within %v", shutdownWait)
	}
	if c, ok := n.transport.(io.Closer); ok {
		c.Close()
	}
	if cerr := n.logStore.Close(); err == nil {
		err = cerr
	}
	return err
}
