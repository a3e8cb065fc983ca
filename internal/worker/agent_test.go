package worker

import "testing"

func TestAPressureLimitIsDefaultedOnlyWhenUnset(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     float64
		want      float64
		refusable bool
	}{
		{"an unset limit becomes 90", 0, 90, true},
		{"a set limit stays", 50, 50, true},
		{"a negative limit stays negative and never refuses (--pressure-limit -1)", -1, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAgent(nil, AgentConfig{PressureLimit: tc.limit})
			if a.cfg.PressureLimit != tc.want {
				t.Fatalf("PressureLimit = %v, want %v", a.cfg.PressureLimit, tc.want)
			}
			if got := a.cfg.PressureLimit > 0; got != tc.refusable {
				t.Fatalf("refuses for pressure: %v, want %v", got, tc.refusable)
			}
		})
	}
}
