package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// maxEvent bounds the event read from a file or stdin; the server caps sync
// events at 6 MB and says so itself.
const maxEvent = 64 << 20

func (a *app) invokeCommand() *cobra.Command {
	var (
		data                string
		async, tail, stream bool
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME[:VERSION|:ALIAS]",
		Short: "Invoke a function and print its result",
		Long: "Invoke function NAME with a JSON event: --data JSON, --data @FILE (@- for stdin),\n" +
			"else stdin when it is not a terminal, else {}. Prints the result JSON. When the\n" +
			"function fails its error JSON is printed and the exit code is 1. With --stream a\n" +
			"handler that returns a generator has its chunks printed as it yields them.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			event, err := a.readEvent(cmd.Flags().Changed("data"), data)
			if err != nil {
				return err
			}
			if stream {
				if async || tail {
					return usagef("--stream prints the result as it comes: it does not go with --async or --tail")
				}
				res, err := a.client().InvokeStream(cmd.Context(), args[0], event, func(b []byte) error {
					_, err := a.env.Stdout.Write(b)
					return err
				})
				if err != nil {
					return a.platform(err)
				}
				if res.ErrorType != "" {
					fmt.Fprintf(a.env.Stderr, "nimbus: the function failed mid-stream: %s (nimbus invocations %s shows its record)\n", res.ErrorType, args[0])
				}
				if res.FunctionError != "" {
					return &exitError{code: ExitFunctionError}
				}
				return nil
			}
			res, err := a.client().Invoke(cmd.Context(), args[0], event, client.InvokeOptions{LogTail: tail && !async, Async: async})
			if err != nil {
				return a.platform(err)
			}
			if async {
				if a.json() {
					return printJSON(a.env.Stdout, map[string]string{"request_id": res.RequestID})
				}
				_, err := fmt.Fprintln(a.env.Stdout, res.RequestID)
				return err
			}
			if tail {
				io.WriteString(a.env.Stderr, ensureNewline(res.LogTail))
			}
			if strings.Contains(args[0], ":") && res.Version != "" && !a.json() {
				fmt.Fprintf(a.env.Stderr, "version %s ran\n", res.Version)
			}
			payload := bytes.TrimRight(res.Payload, "\n")
			if a.json() {
				var buf bytes.Buffer
				if json.Indent(&buf, payload, "", "  ") == nil {
					payload = buf.Bytes()
				}
			}
			if _, err := fmt.Fprintf(a.env.Stdout, "%s\n", payload); err != nil {
				return err
			}
			if res.FunctionError != "" {
				return &exitError{code: ExitFunctionError}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "event JSON, or @FILE to read it from a file (@- for stdin)")
	f.BoolVar(&async, "async", false, "queue the invocation and print its request id")
	f.BoolVar(&tail, "tail", false, "print the end of the invocation's log to stderr")
	f.BoolVar(&stream, "stream", false, "print the result as it is produced (a handler that yields its chunks)")
	return cmd
}

// readEvent returns the event to send, checked to be JSON.
func (a *app) readEvent(given bool, data string) ([]byte, error) {
	var (
		event []byte
		src   = "--data"
		err   error
	)
	switch {
	case given && data == "@-":
		src = "stdin"
		event, err = io.ReadAll(io.LimitReader(a.env.Stdin, maxEvent))
	case given && strings.HasPrefix(data, "@"):
		src = data[1:]
		event, err = os.ReadFile(a.path(data[1:]))
	case given:
		event = []byte(data)
	case !a.env.IsTerminal(a.env.Stdin):
		src = "stdin"
		event, err = io.ReadAll(io.LimitReader(a.env.Stdin, maxEvent))
		if err == nil && len(bytes.TrimSpace(event)) == 0 {
			event = []byte("{}")
		}
	default:
		event = []byte("{}")
	}
	if err != nil {
		return nil, usagef("reading the event: %v", err)
	}
	if !json.Valid(event) {
		return nil, usagef("the event from %s is not valid JSON", src)
	}
	return event, nil
}
