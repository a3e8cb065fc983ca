// Package fsm owns the Raft commands and the finite state machine that
// applies them to the state store.
//
// Contracts, as in Nomad:
//   - Command types are append-only: a number is never reused or renumbered.
//   - Apply is deterministic: timestamps and IDs arrive inside the command;
//     nothing in Apply reads the clock or a random source.
//   - Objects read from the store are never mutated in place.
package fsm

import (
	"encoding/json"
	"fmt"
	"time"

	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// CommandType identifies a command. Append only.
type CommandType uint8

const (
	UpsertFunctionType    CommandType = 1
	DeleteFunctionType    CommandType = 2
	RecordInvocationsType CommandType = 3
	PutKeyType            CommandType = 4
	PutServerType         CommandType = 5
)

func (t CommandType) String() string {
	switch t {
	case UpsertFunctionType:
		return "UpsertFunction"
	case DeleteFunctionType:
		return "DeleteFunction"
	case RecordInvocationsType:
		return "RecordInvocations"
	case PutKeyType:
		return "PutKey"
	case PutServerType:
		return "PutServer"
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// UpsertFunction creates a function or adds a revision to it.
type UpsertFunction struct {
	Function client.Function `json:"function"`
	Now      time.Time       `json:"now"`
}

// UpsertFunctionResult is what applying UpsertFunction returns.
type UpsertFunctionResult struct {
	Function client.Function
	Created  bool
}

// DeleteFunction removes a function.
type DeleteFunction struct {
	Name string `json:"name"`
}

// RecordInvocations stores a batch of invocation records and applies
// retention as of Now.
type RecordInvocations struct {
	Records   []client.Invocation `json:"records"`
	Retention state.Retention     `json:"retention"`
	Now       time.Time           `json:"now"`
}

// RecordInvocationsResult lists the records that retention removed, so
// the caller can drop their logs too.
type RecordInvocationsResult struct {
	Removed []string
}

// PutKey stores an API key (its hash only).
type PutKey struct {
	Key state.Key `json:"key"`
}

// PutServer records a control-plane member's addresses.
type PutServer struct {
	Server state.ServerInfo `json:"server"`
}

// DecodeResult turns the JSON of an Apply result, as a forwarding leader
// sent it, back into the type that applying t returns locally.
func DecodeResult(t CommandType, b []byte) (any, error) {
	switch t {
	case UpsertFunctionType:
		var r UpsertFunctionResult
		return r, json.Unmarshal(b, &r)
	case RecordInvocationsType:
		var r RecordInvocationsResult
		return r, json.Unmarshal(b, &r)
	}
	return nil, nil
}

// Encode serialises a command: one type byte, then JSON.
func Encode(t CommandType, cmd any) ([]byte, error) {
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}
