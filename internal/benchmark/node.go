package benchmark

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"nimbus/internal/nodeproc"
)

// devNode is a `nimbus dev` a run started with its own data directory.
// stop ends it and removes its data.
type devNode struct {
	*nodeproc.Dev
	tmp string // holds the data directory
}

// startDev starts `exe dev` on a free port with a data directory of its
// own and waits (up to a minute) for its API line and admin token.
func startDev(ctx context.Context, exe string, extra ...string) (*devNode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "nimbus-bench")
	if err != nil {
		return nil, err
	}
	d, err := nodeproc.StartDev(exe, filepath.Join(tmp, "data"), extra...)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("benchmark: %w", err)
	}
	return &devNode{Dev: d, tmp: tmp}, nil
}

// stop interrupts the node as Ctrl-C does, kills it if it has not exited
// within 30 seconds, and removes its data.
func (n *devNode) stop() error {
	err := n.Stop(30 * time.Second)
	if rmErr := os.RemoveAll(n.tmp); rmErr != nil {
		err = fmt.Errorf("benchmark: removing nimbus dev's data: %w", rmErr)
	}
	return err
}
