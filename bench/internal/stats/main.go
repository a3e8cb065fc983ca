package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Main is the end of a benchmark program's main: it runs run until it
// returns or the program is interrupted, exits 1 with name's error on
// failure, and prints the result as indented JSON (format "json") or as
// table prints it.
func Main[R any](name, format string, run func(context.Context) (R, error), table func(io.Writer, R)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	table(os.Stdout, res)
}

// Ints reads a flag's comma-separated list of whole numbers, each from lo
// to hi; the error names the flag and the bad item.
func Ints(flagName, list string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("-%s: %q is not a number from %d to %d", flagName, f, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}
