package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// runInputLimit bounds one client message after the start (stdin data
// or a control message): what the server holds of a run's input.
const runInputLimit = 64 << 10

// run serves GET /v1/runs: the websocket of an interactive run (the
// protocol is pkg/client's RunStart, RunControl and RunNotice). It
// decodes the start, hands the run to the service and relays frames both
// ways; the service checks, queues, places and records it. What a run
// holds here: one output chunk on its way to the client, one input
// message on its way to the worker, and for a remote worker at most
// worker.DefaultRunWindow of output received and not yet relayed.
func (g *Gateway) run(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	if err := g.svc.CheckRunQueue(ns); err != nil {
		writeError(w, g.log, err) // before the upgrade: a plain 429 with Retry-After
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ws.SetReadLimit(service.MaxRunSource*2 + 64<<10) // the start holds the files, escaped as JSON
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return
	}
	req, err := decodeRunStart(typ, b)
	if err != nil {
		g.runRefused(ctx, ws, err)
		return
	}
	ws.SetReadLimit(runInputLimit)
	// The client's messages, read as they come: reading notices a client
	// that went away (ctx ends, which ends the run) while the run waits
	// in the queue or runs.
	inputs := make(chan worker.RunInput)
	go func() {
		defer cancel()
		for {
			typ, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			in, err := decodeRunInput(typ, b)
			if err != nil {
				ws.Close(websocket.StatusPolicyViolation, err.Error())
				return
			}
			select {
			case inputs <- in:
			case <-ctx.Done():
				return
			}
		}
	}()
	sess, err := g.svc.StartRun(ctx, ns, newRequestID(), req, func(q service.RunQueued) {
		writeNotice(ctx, ws, client.RunNotice{Type: "queued", Position: q.Position, EstimateMS: q.Estimate.Milliseconds()})
	})
	if err != nil {
		g.runRefused(ctx, ws, err)
		return
	}
	defer sess.Close()
	if writeNotice(ctx, ws, client.RunNotice{Type: "started", ID: sess.ID()}) != nil {
		return
	}
	go func() {
		for {
			select {
			case in := <-inputs:
				if err := sess.Input(in); err != nil {
					writeNotice(ctx, ws, client.RunNotice{Type: "error", Status: http.StatusBadRequest, Error: &client.APIError{Code: "BadRequest", Message: err.Error()}})
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	frame := make([]byte, 0, 1+worker.RunChunk)
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			return // the client went away: Close kills the run
		}
		if ev.Exit != nil {
			err := writeNotice(ctx, ws, client.RunNotice{Type: "exit", Exit: runExit(ev.Exit)})
			// The slot frees now, not after the closing handshake (which
			// waits up to 5 s for a client that reads no more).
			sess.Close()
			if err == nil {
				ws.Close(websocket.StatusNormalClosure, "")
			}
			return
		}
		frame = append(append(frame[:0], byte(ev.Stream)), ev.Data...)
		if ws.Write(ctx, websocket.MessageBinary, frame) != nil {
			return
		}
	}
}

// decodeRunStart reads a run's first message.
func decodeRunStart(typ websocket.MessageType, b []byte) (service.RunRequest, error) {
	var st client.RunStart
	if typ != websocket.MessageText {
		return service.RunRequest{}, badRequest("a run's first message is its start, as JSON text")
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return service.RunRequest{}, badRequest("the start is not valid JSON: " + err.Error())
	}
	if st.Type != "start" {
		return service.RunRequest{}, badRequest(fmt.Sprintf("a run's first message has type %q; it must be \"start\"", st.Type))
	}
	files := make(map[string][]byte, len(st.Files))
	for name, src := range st.Files {
		files[name] = []byte(src)
	}
	return service.RunRequest{
		Runtime: st.Runtime, Files: files, Function: st.Function, Entry: st.Entry, Args: st.Args, Env: st.Env,
		Limits: worker.RunLimits{Timeout: time.Duration(st.Timeout), IdleTimeout: time.Duration(st.IdleTimeout),
			MemoryMB: st.MemoryMB, OutputBytes: st.OutputLimit},
	}, nil
}

// decodeRunInput reads a client's message after the start: binary is
// stdin, text a RunControl.
func decodeRunInput(typ websocket.MessageType, b []byte) (worker.RunInput, error) {
	if typ == websocket.MessageBinary {
		return worker.RunInput{Stdin: b}, nil
	}
	var c client.RunControl
	if err := json.Unmarshal(b, &c); err != nil {
		return worker.RunInput{}, errors.New("a control message that is not JSON")
	}
	switch c.Type {
	case "stdin":
		return worker.RunInput{Stdin: []byte(c.Data)}, nil
	case "eof":
		return worker.RunInput{EOF: true}, nil
	case "signal":
		if c.Signal != worker.SignalInterrupt && c.Signal != worker.SignalTerminate {
			return worker.RunInput{}, fmt.Errorf("signal %q is not interrupt or terminate", c.Signal)
		}
		return worker.RunInput{Signal: c.Signal}, nil
	}
	return worker.RunInput{}, fmt.Errorf("control message type %q is not stdin, eof or signal", c.Type)
}

// runRefused tells the client why its run did not start, with the status
// a plain request would have had, and closes.
func (g *Gateway) runRefused(ctx context.Context, ws *websocket.Conn, err error) {
	status, code, msg := explain(g.log, err)
	writeNotice(ctx, ws, client.RunNotice{Type: "error", Status: status, Error: &client.APIError{Code: code, Message: msg}})
	ws.Close(websocket.StatusPolicyViolation, code)
}

func writeNotice(ctx context.Context, ws *websocket.Conn, n client.RunNotice) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, b)
}

// runExit is a run's exit as the API shows it.
func runExit(ex *worker.RunExit) *client.RunExit {
	return &client.RunExit{
		Code: ex.Code, Signal: ex.Signal, Verdict: ex.Verdict, WallMS: model.DurationMS(ex.Wall),
		CPUMS: model.DurationMS(ex.CPU), MaxMemoryBytes: ex.MaxMemB, OutputBytes: ex.Output, Worker: ex.WorkerID,
	}
}
