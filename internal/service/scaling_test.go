package service

import (
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/pkg/client"
)

func ready(id string, slots, inUse int) client.Worker {
	return client.Worker{ID: id, Slots: slots, InUse: inUse, Healthy: true, State: placement.StateReady}
}

func TestDesiredWorkers(t *testing.T) {
	dead := client.Worker{ID: "d", Slots: 8, State: placement.StateDead}
	draining := client.Worker{ID: "x", Slots: 8, InUse: 8, State: placement.StateDraining}
	for _, tc := range []struct {
		name        string
		in          ScalingInput
		policy      ScalingPolicy
		want        int
		wantPSI     float64 // -1: none reported
		wantReasons []string
	}{
		{
			name: "an idle cluster asks for the minimum of one",
			in:   ScalingInput{Workers: []client.Worker{ready("a", 4, 0), ready("b", 4, 0)}},
			want: 1, wantPSI: -1, wantReasons: []string{"raised from 0 to the minimum of 1", "no ready worker reports pressure"},
		},
		{
			name: "load that fills exactly 70% of one worker's slots needs one worker",
			in:   ScalingInput{Workers: []client.Worker{ready("a", 10, 7)}},
			want: 1, wantPSI: -1,
		},
		{
			name: "one invocation more needs a second worker",
			in:   ScalingInput{Workers: []client.Worker{ready("a", 10, 8)}},
			want: 2, wantPSI: -1,
		},
		{
			name: "queued events count with the invocations running",
			in:   ScalingInput{Workers: []client.Worker{ready("a", 4, 4), ready("b", 4, 4)}, QueueDepth: 20},
			// 28 / (4 × 0.7) = 10
			want: 10, wantPSI: -1, wantReasons: []string{"8 invocations running or waiting at the ready workers and 20 queued events ready to run need 10 workers of 4 slots at 70% utilisation"},
		},
		{
			name:   "a target utilisation of 100% packs the slots",
			in:     ScalingInput{Workers: []client.Worker{ready("a", 4, 4), ready("b", 4, 4)}},
			policy: ScalingPolicy{TargetUtilisation: 1},
			want:   2, wantPSI: -1,
		},
		{
			name: "dead and draining workers neither count nor give capacity",
			in:   ScalingInput{Workers: []client.Worker{ready("a", 8, 6), dead, draining}},
			want: 2, wantPSI: -1,
		},
		{
			name: "with no ready worker the slots per worker come from the others",
			in:   ScalingInput{Workers: []client.Worker{dead}, QueueDepth: 12},
			// 12 / (8 × 0.7) = 2.14
			want: 3, wantPSI: -1, wantReasons: []string{"no worker is ready"},
		},
		{
			name: "with no worker at all queued events ask for one",
			in:   ScalingInput{QueueDepth: 3},
			want: 1, wantPSI: -1, wantReasons: []string{"no worker has reported its slots"},
		},
		{
			name:   "the minimum holds an idle cluster up",
			in:     ScalingInput{Workers: []client.Worker{ready("a", 4, 0)}},
			policy: ScalingPolicy{MinWorkers: 3},
			want:   3, wantPSI: -1,
		},
		{
			name:   "the maximum caps a busy one",
			in:     ScalingInput{Workers: []client.Worker{ready("a", 4, 4)}, QueueDepth: 100},
			policy: ScalingPolicy{MaxWorkers: 5},
			want:   5, wantPSI: -1, wantReasons: []string{"capped from 38 at the maximum of 5"},
		},
		{
			name:   "a maximum below the minimum is raised to it",
			in:     ScalingInput{Workers: []client.Worker{ready("a", 4, 4)}, QueueDepth: 100},
			policy: ScalingPolicy{MinWorkers: 4, MaxWorkers: 2},
			want:   4, wantPSI: -1,
		},
		{
			name: "pressure at the threshold asks for one more worker than now",
			in: ScalingInput{Workers: []client.Worker{ready("a", 4, 1), ready("b", 4, 1)},
				Pressure: map[string]placement.Pressure{"a": {CPU: 10, Memory: 55}, "b": {CPU: 5}}},
			want: 3, wantPSI: 55, wantReasons: []string{"pressure (PSI some avg10) is 55%, at or above 50%: one more worker than the 2 ready"},
		},
		{
			name: "pressure below the threshold is reported and changes nothing",
			in: ScalingInput{Workers: []client.Worker{ready("a", 4, 1)},
				Pressure: map[string]placement.Pressure{"a": {CPU: 12.345}}},
			want: 1, wantPSI: 12.345,
		},
		{
			name: "a draining worker's pressure is not the ready workers'",
			in: ScalingInput{Workers: []client.Worker{ready("a", 4, 1), draining},
				Pressure: map[string]placement.Pressure{"x": {CPU: 99}}},
			want: 1, wantPSI: -1,
		},
		{
			name: "pressure adds nothing when the slots already ask for more",
			in: ScalingInput{Workers: []client.Worker{ready("a", 4, 4)}, QueueDepth: 4,
				Pressure: map[string]placement.Pressure{"a": {CPU: 90}}},
			want: 3, wantPSI: 90,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DesiredWorkers(tc.in, tc.policy)
			if got.Workers.Desired != tc.want {
				t.Errorf("desired = %d, want %d (reasons: %q)", got.Workers.Desired, tc.want, got.Workers.Reasons)
			}
			switch {
			case tc.wantPSI < 0 && got.Load.PSISomeAvg10 != nil:
				t.Errorf("psi = %v, want none", *got.Load.PSISomeAvg10)
			case tc.wantPSI >= 0 && (got.Load.PSISomeAvg10 == nil || *got.Load.PSISomeAvg10 != tc.wantPSI):
				t.Errorf("psi = %v, want %v", got.Load.PSISomeAvg10, tc.wantPSI)
			}
			all := strings.Join(got.Workers.Reasons, "\n")
			for _, r := range tc.wantReasons {
				if !strings.Contains(all, r) {
					t.Errorf("reasons %q lack %q", got.Workers.Reasons, r)
				}
			}
			if got.Workers.Min < 1 || got.Workers.Desired < got.Workers.Min {
				t.Errorf("desired %d below min %d", got.Workers.Desired, got.Workers.Min)
			}
		})
	}
}

func TestDesiredWorkersReportsTheLoadItCounted(t *testing.T) {
	got := DesiredWorkers(ScalingInput{
		Workers:    []client.Worker{ready("a", 4, 3), ready("b", 6, 2), {ID: "c", Slots: 8, InUse: 5, State: placement.StateDraining}},
		QueueDepth: 7,
	}, ScalingPolicy{})
	want := client.ScalingLoad{Slots: 10, InUse: 5, QueueDepth: 7, TargetUtilisation: DefaultTargetUtilisation}
	if got.Load != want || got.Workers.Current != 2 {
		t.Fatalf("load = %+v, current %d; want %+v, current 2", got.Load, got.Workers.Current, want)
	}
}

func TestTheQueueDepthCountsOnlyEventsReadyToRunThatNoWorkerHasTaken(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	items := []*model.QueueItem{
		{RequestID: "ready"},
		{RequestID: "due", NotBefore: now},
		{RequestID: "lease expired", LeaseUntil: now.Add(-time.Second)},
		{RequestID: "leased", LeaseUntil: now.Add(time.Minute)},
		{RequestID: "retry later", NotBefore: now.Add(time.Minute)},
	}
	if got := queueDepth(items, now); got != 3 {
		t.Fatalf("queue depth = %d, want 3", got)
	}
}
