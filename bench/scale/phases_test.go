package main

import "testing"

func TestPhasesAreReadFromTheLastStartInALog(t *testing.T) {
	log := `time=2026-12-07T06:28:40.000Z level=INFO msg="raft state loaded" node=s2 subsystem=controlplane took=9.9s open=1s restore=1s snapshot_index=1 snapshot_bytes=1 last_index=2
time=2026-12-07T06:28:46.704Z level=INFO msg="raft state loaded" node=s2 subsystem=controlplane took=2.138s open=2ms restore=1.601s snapshot_index=63172 snapshot_bytes=52713019 last_index=63650
time=2026-12-07T06:28:46.710Z level=INFO msg="nimbus server started" node=s2 api=127.0.0.1:36347 raft=127.0.0.1:45755 bootstrap_expect=3 join="[127.0.0.1:43419 127.0.0.1:36347]" took=2.145s
time=2026-12-07T06:28:46.982Z level=INFO msg="caught up with the cluster" node=s2 subsystem=controlplane after_start=2.415s
`
	got := phasesOf(log)
	want := Phases{RaftLoadedS: 2.138, RaftOpenS: 0.002, RestoreS: 1.601, SnapshotBytes: 52713019, EntriesAfter: 478, StartedS: 2.145, CaughtUpS: 2.415}
	if got != want {
		t.Errorf("phasesOf = %+v, want %+v", got, want)
	}
	if got := phasesOf("nothing logged yet\n"); got != (Phases{}) {
		t.Errorf("phasesOf(no start) = %+v, want none", got)
	}
}
