package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

func TestRecordRetentionFlagsTakeEffect(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--records-per-function", "3", "--record-retention", "1h")
	n.mustDeploy("kept", okHandler, nil)
	var ids []string
	for i := 0; i < 6; i++ {
		status, h, b := n.do("POST", "/v1/functions/kept/invoke", "application/json", strings.NewReader(`{}`))
		if status != 200 {
			t.Fatalf("invoke %d: %d %s", i, status, b)
		}
		ids = append(ids, h.Get(client.HeaderRequestID))
	}
	// Once the last record is stored, the batch that stored it has
	// applied the limit.
	var recs []client.Invocation
	waitFor(t, 30*time.Second, "the last invocation's record is stored and the oldest pruned", func() bool {
		recs = n.invocations("kept")
		return len(recs) > 0 && recs[0].ID == ids[5] && len(recs) <= 3
	})
	if len(recs) != 3 {
		t.Errorf("%d records kept, want 3 (--records-per-function 3)", len(recs))
	}
	for _, old := range ids[:3] {
		if _, ok := n.record(old); ok {
			t.Errorf("record %s, older than the newest 3, is still kept", old)
		}
	}
}

func TestRecordRetentionFlagsRefuseBadValues(t *testing.T) {
	parallel(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--records-per-function", "0"}, "--records-per-function must be 1 or more"},
		{[]string{"--records-per-function", "-5"}, "--records-per-function must be 1 or more"},
		{[]string{"--record-retention", "0s"}, "--record-retention must be a positive duration"},
		{[]string{"--record-retention", "a week"}, `invalid argument "a week" for "--record-retention"`},
	}
	for _, c := range cases {
		args := append([]string{"dev", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, nimbusBin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("nimbus dev %v: %v, stderr %q; want exit 2 saying %q", c.args, err, stderr.String(), c.want)
		}
	}
}
