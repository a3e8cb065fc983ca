package controlplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"nimbus/internal/fsm"
	"nimbus/internal/state"
)

// ErrRunning is a recovery asked of a data directory whose server still
// runs (it holds the Raft database's lock).
var ErrRunning = errors.New("the server that owns this data directory is running: stop it first")

// ErrHasQuorum is a recovery refused because a majority of the
// cluster's servers still answer: the cluster can repair itself
// (nimbus cluster remove), and a recovered server would split it.
var ErrHasQuorum = errors.New("the cluster still has a quorum")

// Recover makes the Raft data of a stopped server, in dataDir, that of a
// cluster of exactly servers, for disaster recovery when a majority of
// the servers is lost for good (Consul's peers.json, hashicorp/raft's
// RecoverCluster). It replays the server's log into a fresh state,
// writes that as a snapshot and records servers as the only
// configuration: started again (each survivor recovered with the same
// list), the servers elect a leader among themselves and serve the data
// they had. Writes the lost servers had committed that no survivor had
// received are gone. The list must include this server, with the Raft
// address it is started with, and name only servers of the cluster's
// last configuration. It is refused (ErrHasQuorum) while a majority of
// that configuration's servers answer on their Raft addresses, unless
// force.
func Recover(dataDir string, servers []Peer, force bool, log *slog.Logger) error {
	if len(servers) == 0 {
		return errors.New("name the servers the recovered cluster is made of (at least this one)")
	}
	seen := map[string]bool{}
	conf := raft.Configuration{}
	for _, p := range servers {
		if p.ID == "" || p.Raft == "" || seen[p.ID] {
			return fmt.Errorf("server %q at %q: each server needs its own ID and a Raft address", p.ID, p.Raft)
		}
		seen[p.ID] = true
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft)})
	}
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		return fmt.Errorf("%s holds no Raft data: %w", dataDir, err)
	}
	opts := *bbolt.DefaultOptions
	opts.Timeout = time.Second
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &opts})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return ErrRunning
	}
	if err != nil {
		return fmt.Errorf("open the Raft database: %w", err)
	}
	defer store.Close()
	quiet := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, quiet)
	if err != nil {
		return fmt.Errorf("open the snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = conf.Servers[0].ID
	rc.Logger = quiet
	_, transport := raft.NewInmemTransport("")
	last, err := raft.GetConfiguration(rc, fsm.New(state.New(), log), store, store, snaps, transport)
	if err != nil {
		return fmt.Errorf("read the cluster's last configuration: %w", err)
	}
	known := map[raft.ServerID]bool{}
	for _, s := range last.Servers {
		known[s.ID] = true
	}
	for _, p := range servers {
		if !known[raft.ServerID(p.ID)] {
			return fmt.Errorf("server %q is not in this server's last configuration (%s): name the survivors by their IDs", p.ID, describe(last))
		}
	}
	if answering, voters := reachable(last); !force && answering > voters/2 {
		return fmt.Errorf("%w: %d of its %d voters answer on their Raft addresses, so it can elect a leader and remove the lost servers itself (nimbus cluster remove); recovering this one would split it", ErrHasQuorum, answering, voters)
	}
	if err := raft.RecoverCluster(rc, fsm.New(state.New(), log), store, store, snaps, transport, conf); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	return nil
}

// describe lists a configuration's servers as ID=ADDRESS.
func describe(c raft.Configuration) string {
	var parts []string
	for _, s := range c.Servers {
		parts = append(parts, string(s.ID)+"="+string(s.Address))
	}
	return strings.Join(parts, ", ")
}

// reachable counts the voters of c that accept a TCP connection on
// their Raft address within a second, and the voters.
func reachable(c raft.Configuration) (answering, voters int) {
	for _, s := range c.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		conn, err := net.DialTimeout("tcp", string(s.Address), time.Second)
		if err == nil {
			conn.Close()
			answering++
		}
	}
	return answering, voters
}
