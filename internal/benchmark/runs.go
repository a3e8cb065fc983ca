package benchmark

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"nimbus/pkg/client"
)

// RunResult is issue 20's interactive-run keys: the time from asking for
// a run to its first output byte (beside cold_p50_ms), a line's round
// trip through a running program over the websocket (beside
// warm_p50_ms), and the output throughput of a program writing as fast
// as it can (64 MB, the largest output limit).
type RunResult struct {
	RunFirstByteP50MS float64 `json:"run_first_byte_p50_ms"`
	RunFirstByteRatio float64 `json:"run_first_byte_ratio"`
	RunEchoP50MS      float64 `json:"run_echo_p50_ms"`
	RunEchoRatio      float64 `json:"run_echo_ratio"`
	RunStreamMBps     float64 `json:"run_stream_mb_per_s"`
}

// Issue 20's goals.
const (
	RunFirstByteGoal = 2   // run_first_byte_ratio at most
	RunEchoGoal      = 2   // run_echo_ratio at most
	RunStreamGoal    = 100 // MB/s at least
)

// runPause is the pause before each run of the first-byte phase.
const runPause = 250 * time.Millisecond

// runFlood is how much the throughput program writes: the largest output
// limit a run may have.
const runFlood = 64 << 20

// runRuns measures interactive runs through c.
func runRuns(ctx context.Context, c *client.Client, rep *Report, sz sizes) error {
	n := max(sz.cold, 10)
	var first []time.Duration
	for i := range n {
		// Runs a person starts come seconds apart, and the worker
		// refills its stock of sandboxes for runs once it is quiet (a
		// burst of starts is the cold burst keys' business): a pause
		// before each run, as the cold phase pauses for its baseline.
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(runPause):
			}
		}
		t0 := time.Now()
		conn, err := c.Run(ctx, client.RunStart{Files: map[string]string{"main.py": "print('x')\n"}})
		if err != nil {
			return err
		}
		if _, err := untilOutput(ctx, conn, nil); err != nil {
			conn.Close()
			return err
		}
		first = append(first, time.Since(t0))
		if _, err := untilExit(ctx, conn); err != nil {
			conn.Close()
			return err
		}
		conn.Close()
	}
	rr := &RunResult{RunFirstByteP50MS: percentileMS(first, 50)}

	echo := "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n"
	conn, err := c.Run(ctx, client.RunStart{Files: map[string]string{"main.py": echo}})
	if err != nil {
		return err
	}
	var rtts []time.Duration
	line := []byte("ping\n")
	for i := range sz.warm + sz.warmup {
		t0 := time.Now()
		if err := conn.Stdin(ctx, line); err != nil {
			conn.Close()
			return err
		}
		if _, err := untilOutput(ctx, conn, line); err != nil {
			conn.Close()
			return err
		}
		if i >= sz.warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	conn.Control(ctx, client.RunControl{Type: "eof"})
	if _, err := untilExit(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	conn.Close()
	rr.RunEchoP50MS = percentileMS(rtts, 50)

	flood := fmt.Sprintf("import sys\nblock = b'x' * 65536\nout = sys.stdout.buffer\nfor _ in range(%d):\n    out.write(block)\n", runFlood/65536)
	conn, err = c.Run(ctx, client.RunStart{Files: map[string]string{"main.py": flood}, OutputLimit: runFlood, Timeout: client.Duration(5 * time.Minute)})
	if err != nil {
		return err
	}
	defer conn.Close()
	got, err := untilOutput(ctx, conn, nil)
	if err != nil {
		return err
	}
	t0 := time.Now()
	total := int64(len(got))
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			return err
		}
		if m.Notice == nil {
			total += int64(len(m.Data))
			continue
		}
		if m.Notice.Type == "exit" {
			if total != runFlood || m.Notice.Exit.Code != 0 {
				return fmt.Errorf("benchmark: the flood run ended with %d of %d bytes: %+v", total, runFlood, m.Notice.Exit)
			}
			break
		}
		if m.Notice.Type == "error" {
			return m.Notice.Error
		}
	}
	rr.RunStreamMBps = float64(total-int64(len(got))) / (1 << 20) / time.Since(t0).Seconds()
	rep.RunResult = rr
	return nil
}

// untilOutput reads conn until its stdout ends with want (any output
// when want is nil) and returns what it read of stdout.
func untilOutput(ctx context.Context, conn *client.RunConn, want []byte) ([]byte, error) {
	var got []byte
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			return nil, err
		}
		if n := m.Notice; n != nil {
			if n.Type == "exit" || n.Type == "error" {
				return nil, fmt.Errorf("benchmark: the run ended before its output: %+v %+v", n.Exit, n.Error)
			}
			continue
		}
		if m.Stream != client.RunStdout {
			continue
		}
		got = append(got, m.Data...)
		if want == nil || bytes.HasSuffix(got, want) {
			return got, nil
		}
	}
}

// untilExit reads conn to its exit.
func untilExit(ctx context.Context, conn *client.RunConn) (*client.RunExit, error) {
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			return nil, err
		}
		if n := m.Notice; n != nil && n.Type == "exit" {
			return n.Exit, nil
		}
		if n := m.Notice; n != nil && n.Type == "error" {
			return nil, errors.New(n.Error.Message)
		}
	}
}
