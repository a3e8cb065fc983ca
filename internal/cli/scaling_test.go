package cli

import (
	"testing"

	svc "nimbus/internal/service"
)

func TestScalingFlagsThatBoundNothingAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    svc.ScalingPolicy
		ok   bool
	}{
		{"the defaults", svc.ScalingPolicy{MinWorkers: 1, TargetUtilisation: 0.7}, true},
		{"a maximum equal to the minimum", svc.ScalingPolicy{MinWorkers: 3, MaxWorkers: 3, TargetUtilisation: 1}, true},
		{"no minimum", svc.ScalingPolicy{MinWorkers: 0, TargetUtilisation: 0.7}, false},
		{"a maximum below the minimum", svc.ScalingPolicy{MinWorkers: 3, MaxWorkers: 2, TargetUtilisation: 0.7}, false},
		{"a negative maximum", svc.ScalingPolicy{MinWorkers: 1, MaxWorkers: -1, TargetUtilisation: 0.7}, false},
		{"a target of zero", svc.ScalingPolicy{MinWorkers: 1}, false},
		{"a target above one", svc.ScalingPolicy{MinWorkers: 1, TargetUtilisation: 70}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkScaling(tc.p); (err == nil) != tc.ok {
				t.Fatalf("checkScaling(%+v) = %v, want ok %v", tc.p, err, tc.ok)
			}
		})
	}
}

func TestCommandFlagsAreACommandsOwnAndInheritedFlags(t *testing.T) {
	fs, err := CommandFlags("server")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node-id", "bootstrap-expect", "scaling-min-workers", "token", "url"} {
		if fs.Lookup(name) == nil {
			t.Errorf("nimbus server has no --%s here", name)
		}
	}
	if fs.Lookup("servers") != nil {
		t.Error("nimbus server has the worker's --servers")
	}
	if _, err := CommandFlags("no-such-command"); err == nil {
		t.Error("a command that does not exist has flags")
	}
}
