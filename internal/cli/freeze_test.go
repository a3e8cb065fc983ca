package cli

import (
	"strings"
	"testing"
)

// Bad freezing settings are usage errors (exit 2) that name the setting,
// before anything starts.
func TestBadFreezeSettingsAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"dev", "--freeze-delay", "-1s"}, "--freeze-delay must be 0 or more"},
		{map[string]string{"NIMBUS_FREEZE_IDLE": "maybe"}, []string{"dev"}, "NIMBUS_FREEZE_IDLE must be true or false"},
		{map[string]string{"NIMBUS_FREEZE_DELAY": "soon"}, []string{"worker", "--servers", "127.0.0.1:1"}, "NIMBUS_FREEZE_DELAY must be a duration"},
	} {
		r := runCLI(t, c.env, "", c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 and %q", c.env, c.args, r.code, r.stderr, c.want)
		}
	}
}

func TestCPUCapFollowsMemory(t *testing.T) {
	for mb, want := range map[int]string{128: "0.07 vCPU", 1769: "1.00 vCPU", 3538: "2.00 vCPU", 0: ""} {
		if got := cpuCap(mb); !strings.HasPrefix(got, want) || (want == "" && got != "") {
			t.Errorf("cpuCap(%d) = %q, want %q...", mb, got, want)
		}
	}
}
