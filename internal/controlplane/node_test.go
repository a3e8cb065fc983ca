package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/waitfor"
)

func startSingle(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Start(Config{NodeID: "s1", DataDir: dir, Bootstrap: true, SingleNode: true,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if !waitfor.Poll(30*time.Second, n.IsLeader) {
		n.Shutdown()
		t.Fatal("a single node did not elect itself within 30 s")
	}
	return n
}

// A single node elects itself, applies commands through Raft into its
// store (a refused one comes back as the store's error), and has them
// again after a restart from its data directory.
func TestASingleNodeAppliesCommandsAndKeepsThemAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	n := startSingle(t, dir)
	ctx := context.Background()
	if _, err := fsm.Apply(ctx, n, fsm.PutNamespace{Namespace: model.Namespace{Name: "team", CreatedAt: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store().Namespace("team"); err != nil {
		t.Fatalf("the applied namespace: %v", err)
	}
	if _, err := fsm.Apply(ctx, n, fsm.PutPrices{Namespace: "nowhere", Prices: &model.PriceTable{Currency: "EUR"}}); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a refused command: %v, want ErrNotFound", err)
	}
	if m := n.Members(); !slices.Equal(m, []string{"s1"}) {
		t.Fatalf("members %v", m)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	again := startSingle(t, dir)
	defer again.Shutdown()
	// The log is applied again once the node leads: poll for it.
	if !waitfor.Poll(30*time.Second, func() bool { _, err := again.Store().Namespace("team"); return err == nil }) {
		t.Fatal("the namespace is gone after a restart")
	}
}
