package scan

import (
	"testing"

	"nimbus/pkg/client"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{
		"off": {Mode: ModeOff}, "warn": {Mode: ModeWarn},
		"block": {Mode: ModeBlock, BlockAt: "HIGH"}, "block:medium": {Mode: ModeBlock, BlockAt: "MEDIUM"},
	} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "loud", "block:CRITICAL"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", bad)
		}
	}
}

func TestBlockingCountsFindingsAtOrAboveTheSeverity(t *testing.T) {
	r := &client.ScanReport{Findings: []client.Finding{{Severity: "LOW"}, {Severity: "MEDIUM"}, {Severity: "HIGH"}}}
	cases := []struct {
		policy Policy
		want   int
	}{
		{Policy{Mode: ModeWarn}, 0},
		{Policy{Mode: ModeBlock, BlockAt: "HIGH"}, 1},
		{Policy{Mode: ModeBlock, BlockAt: "MEDIUM"}, 2},
		{Policy{Mode: ModeBlock, BlockAt: "LOW"}, 3},
	}
	for _, c := range cases {
		if got := len(c.policy.Blocking(r)); got != c.want {
			t.Errorf("%+v blocks %d, want %d", c.policy, got, c.want)
		}
	}
	if (Policy{Mode: ModeBlock, BlockAt: "LOW"}).Blocking(nil) != nil {
		t.Error("a missing report blocked")
	}
}
