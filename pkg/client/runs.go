package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// The interactive run protocol (docs/spec.md §5 "GET /v1/runs"): a
// websocket. The client's first message is a RunStart (text, JSON); then
// it sends stdin as binary messages (or RunControl "stdin" text
// messages) and RunControl messages for the end of stdin and signals.
// The server sends RunNotice text messages (queued, started, exit,
// error) and the program's output as binary messages: one byte naming
// the stream (RunStdout, RunStderr), then at most RunChunk bytes.

// Output stream tags: the first byte of an output message.
const (
	RunStdout = 1
	RunStderr = 2
)

// RunChunk is the most output bytes one message carries.
const RunChunk = 1500

// RunStart starts a run: the program's files (text) or a deployed
// function whose package holds them, the one run, and its limits (each
// within the platform's; zero for the default: a function's memory size
// for a function's run).
type RunStart struct {
	Type        string            `json:"type"` // "start"
	Runtime     string            `json:"runtime,omitempty"`
	Files       map[string]string `json:"files,omitempty"`
	Function    string            `json:"function,omitempty"` // instead of files: run this function's code (its layers too)
	Entry       string            `json:"entry,omitempty"`    // "" for main.py (a function's: its handler's module)
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`      // e.g. "30s"; default 60s, at most 15m
	IdleTimeout Duration          `json:"idle_timeout,omitempty"` // default 5m, at most 1h
	MemoryMB    int               `json:"memory_mb,omitempty"`    // default 128
	OutputLimit int64             `json:"output_limit,omitempty"` // bytes of stdout and stderr; default 1 MB, at most 64 MB
}

// RunControl is a client's message after the start: "stdin" (Data), "eof",
// or "signal" (Signal: "interrupt" or "terminate").
type RunControl struct {
	Type   string `json:"type"`
	Data   string `json:"data,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// RunNotice is a server's text message: "queued" (Position,
// EstimateMS), "started" (ID, Worker), "exit" (Exit) or "error" (Error,
// with the HTTP status the refusal would have had).
type RunNotice struct {
	Type       string    `json:"type"`
	Position   int       `json:"position,omitempty"`
	EstimateMS int64     `json:"estimate_ms,omitempty"`
	ID         string    `json:"id,omitempty"`
	Exit       *RunExit  `json:"exit,omitempty"`
	Status     int       `json:"status,omitempty"` // an error's
	Error      *APIError `json:"error,omitempty"`
}

// RunExit is how a run ended. Verdict is "" when the program ended by
// itself, else Sandbox.Timeout, Sandbox.IdleTimeout, Sandbox.OutOfMemory,
// Sandbox.OutputLimitExceeded, Sandbox.WorkerLost or Run.Terminated.
type RunExit struct {
	Code           int     `json:"code"` // -1 when a signal ended it
	Signal         string  `json:"signal,omitempty"`
	Verdict        string  `json:"verdict,omitempty"`
	WallMS         float64 `json:"wall_ms"`
	CPUMS          float64 `json:"cpu_ms"`
	MaxMemoryBytes int64   `json:"max_memory_bytes"`
	OutputBytes    int64   `json:"output_bytes"`
	Worker         string  `json:"worker,omitempty"`
}

// RunConn is a client's side of a run.
type RunConn struct {
	ws *websocket.Conn
}

// RunMessage is one message from the server: output (Stream and Data) or
// a notice.
type RunMessage struct {
	Stream int
	Data   []byte
	Notice *RunNotice
}

// Run opens a run and sends its start. A refusal before the upgrade
// (authentication, a full queue) is an *APIError; one after it comes as
// an "error" notice.
func (c *Client) Run(ctx context.Context, start RunStart) (*RunConn, error) {
	u, err := c.endpoint("/v1/runs", nil)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
	if c.namespace != "" {
		h.Set(HeaderNamespace, c.namespace)
	}
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(u, "http"), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, decodeError(resp)
		}
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	start.Type = "start"
	b, err := json.Marshal(start)
	if err == nil {
		err = ws.Write(ctx, websocket.MessageText, b)
	}
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	return &RunConn{ws: ws}, nil
}

// Next waits for the server's next message.
func (r *RunConn) Next(ctx context.Context) (RunMessage, error) {
	typ, b, err := r.ws.Read(ctx)
	if err != nil {
		return RunMessage{}, err
	}
	if typ == websocket.MessageBinary {
		if len(b) == 0 {
			return RunMessage{}, errors.New("run: an empty output message")
		}
		return RunMessage{Stream: int(b[0]), Data: b[1:]}, nil
	}
	var n RunNotice
	if err := json.Unmarshal(b, &n); err != nil {
		return RunMessage{}, fmt.Errorf("run: a notice that is not JSON: %w", err)
	}
	return RunMessage{Notice: &n}, nil
}

// Stdin sends bytes to the program's stdin.
func (r *RunConn) Stdin(ctx context.Context, b []byte) error {
	return r.ws.Write(ctx, websocket.MessageBinary, b)
}

// Control sends a control message ("eof", "signal").
func (r *RunConn) Control(ctx context.Context, m RunControl) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return r.ws.Write(ctx, websocket.MessageText, b)
}

// Close closes the connection (the server then ends the run if it still
// runs).
func (r *RunConn) Close() error { return r.ws.Close(websocket.StatusNormalClosure, "") }
