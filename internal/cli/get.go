package cli

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME[:VERSION|:ALIAS]",
		Short: "Describe a function",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := a.client().GetFunction(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, f)
			}
			runtime := f.Runtime
			if runtime == "" {
				runtime = "(newest available)"
			}
			t := newTable(a.env.Stdout)
			t.row("name:", f.Name)
			t.row("namespace:", client.NamespaceOf(f.Namespace))
			t.row("description:", f.Description)
			if f.Version != "" && f.Version != "$LATEST" {
				t.row("version:", f.Version)
			}
			t.row("revision:", strconv.FormatInt(f.Revision, 10))
			t.row("runtime:", runtime)
			t.row("handler:", f.Handler)
			t.row("memory:", memoryMB(f.MemoryMB))
			t.row("cpu:", cpuCap(f.MemoryMB))
			t.row("timeout:", timeoutString(time.Duration(f.Timeout)))
			t.row("/tmp size:", memoryMB(f.EphemeralMB))
			t.row("code sha256:", f.CodeSHA256)
			t.row("code size:", humanBytes(f.CodeSize))
			if s := scanSummary(f.Scan); s != "" {
				t.row("code scan:", s)
				if f.Scan != nil {
					for _, x := range f.Scan.Findings {
						t.row("", fmt.Sprintf("%s %s:%d %s (%s)", x.Severity, x.File, x.Line, x.Text, x.TestID))
					}
				}
			}
			for _, r := range append(layerRows(f), concurrencyAndAsyncRows(f.FunctionConfig)...) {
				t.row(r[0], r[1])
			}
			t.row("created:", humanTime(f.CreatedAt))
			t.row("updated:", humanTime(f.UpdatedAt))
			if len(f.Env) == 0 {
				t.row("env:", "")
			}
			for i, k := range slices.Sorted(maps.Keys(f.Env)) {
				label := ""
				if i == 0 {
					label = "env:"
				}
				t.row(label, k+"="+f.Env[k])
			}
			return t.flush()
		},
	}
}

// concurrencyAndAsyncRows describes a function's concurrency settings and
// how its asynchronous invocations are retried and where their outcomes
// go, with the defaults (docs/spec.md §6) when unset.
func concurrencyAndAsyncRows(c client.FunctionConfig) [][2]string {
	reserved := "none (shares the namespace's limit)"
	if c.ReservedConcurrency != nil {
		reserved = strconv.Itoa(*c.ReservedConcurrency)
		if *c.ReservedConcurrency == 0 {
			reserved += " (stopped: every invocation is throttled)"
		}
	}
	retries := "2 (default)"
	if c.Retries != nil {
		retries = strconv.Itoa(*c.Retries)
	}
	delay := "1m (default), doubling each try"
	if c.RetryDelay != 0 {
		delay = time.Duration(c.RetryDelay).String() + ", doubling each try"
	}
	age := "6h (default)"
	if c.MaxEventAge != 0 {
		age = time.Duration(c.MaxEventAge).String()
	}
	onSuccess, onFailure := "none", "none"
	if d := c.Destinations; d != nil {
		if d.OnSuccess != "" {
			onSuccess = d.OnSuccess
		}
		if d.OnFailure != "" {
			onFailure = d.OnFailure
		}
	}
	return [][2]string{
		{"reserved concurrency:", reserved},
		{"provisioned:", strconv.Itoa(c.Provisioned)},
		{"async retries:", retries},
		{"retry delay:", delay},
		{"max event age:", age},
		{"on success:", onSuccess},
		{"on failure:", onFailure},
	}
}
