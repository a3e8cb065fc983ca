package state

import (
	"io"
	"slices"

	"nimbus/internal/model"
)

// Counts says how many objects of each kind the snapshot holds, by
// kind ("functions", "versions", "keys", ...), kinds with none left out:
// what `nimbus operator snapshot inspect` prints.
func (snap *Snapshot) Counts() map[string]int {
	out := map[string]int{}
	add := func(kind string, n int) {
		if n > 0 {
			out[kind] = n
		}
	}
	add("functions", len(snap.Functions))
	add("versions", len(snap.Versions))
	add("aliases", len(snap.Aliases))
	add("keys", len(snap.Keys))
	add("servers", len(snap.Servers))
	add("queued_events", len(snap.Queue))
	add("dead_letters", len(snap.DeadLetters))
	add("schedules", len(snap.Schedules))
	add("subscriptions", len(snap.Subscriptions))
	add("audit_entries", len(snap.Audit))
	add("namespaces", len(snap.Namespaces))
	add("records", len(snap.Records))
	add("users", len(snap.Users))
	add("sessions", len(snap.Sessions))
	add("sources", len(snap.Sources))
	add("topics", len(snap.Topics))
	add("function_urls", len(snap.FunctionURLs))
	add("test_events", len(snap.TestEvents))
	add("budgets", len(snap.Budgets))
	add("builds", len(snap.Builds))
	add("dependency_layers", len(snap.DepLayers))
	add("layers", len(snap.Layers))
	add("metric_series", len(snap.Metrics))
	return out
}

// Blobs lists the digests of the blobs the snapshot's objects name,
// sorted and each once: the functions' and versions' code and
// dependency layers, and the layers. A backup holds them beside the
// snapshot; a restore needs them all.
func (snap *Snapshot) Blobs() []string {
	var out []string
	fn := func(f *model.Function) {
		out = append(out, f.CodeSHA256)
		if f.Deps != nil {
			out = append(out, f.Deps.SHA256)
		}
		for _, r := range f.LayerRefs {
			out = append(out, r.SHA256)
		}
	}
	for _, f := range snap.Functions {
		fn(f)
	}
	for _, f := range snap.Versions {
		fn(f)
	}
	for _, l := range snap.Layers {
		out = append(out, l.SHA256)
	}
	for _, d := range snap.DepLayers {
		out = append(out, d.SHA256)
	}
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// SummarizeSnapshot reads a snapshot and returns what a backup says of
// it: its objects' counts (as Counts) and the blobs they name (as
// Blobs), without keeping its records, which are most of it.
func SummarizeSnapshot(r io.Reader) (counts map[string]int, blobs []string, err error) {
	records := 0
	snap, err := readSnapshot(r, func(run []model.Invocation) { records += len(run) })
	if err != nil {
		return nil, nil, err
	}
	counts = snap.Counts()
	if records > 0 {
		counts["records"] = records
	}
	return counts, snap.Blobs(), nil
}
