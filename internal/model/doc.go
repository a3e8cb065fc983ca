// Package model owns the stored format of the control plane: the objects
// the state store holds, the FSM's commands carry through the Raft log,
// snapshots persist and each server's log store (logs.db) keeps. It is
// not the API: pkg/client holds the wire types, and internal/wire
// converts between the two at the edge (the gateway, the notifier), so
// that the API can change without changing what is stored, and the other
// way round.
//
// Contracts:
//   - A field's JSON name never changes, and its meaning never changes:
//     every Raft log entry and snapshot ever written must still decode.
//     Add fields (with omitempty/omitzero, a zero value meaning what the
//     old data meant), never rename or reuse one. testdata/*.json holds
//     each type's encoding; TestGolden fails on any change to it.
//   - Types here have no behaviour beyond small pure helpers; they import
//     nothing of this module.
//
// The snapshot (state.Snapshot) is versioned: a snapshot starts with a
// header line {"nimbus_snapshot":N}; one without it is version 1 (the
// shape written before the header existed). A change that old code could
// not read correctly (a field whose meaning changes, a section encoded
// another way) bumps state.SnapshotVersion, and Restore decodes each
// version it knows.
package model
