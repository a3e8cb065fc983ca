package python

import (
	"nimbus/internal/waitfor"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// With the process executor (--insecure-no-sandbox) there is nothing to
// freeze: freezing is a no-op, invocations answer, and a child the
// handler left keeps running (nothing counts it either).
func TestFreezingIsANoOpWithoutASandbox(t *testing.T) {
	out := filepath.Join(t.TempDir(), "count")
	inst := startTest(t, `
import os
def handler(event, context):
    if os.fork() == 0:
        n = 0
        while True:
            n += 1
            if n % 20000 == 0:
                with open(`+strconv.Quote(out+".new")+`, 'w') as f:
                    f.write(str(n))
                os.replace(`+strconv.Quote(out+".new")+`, `+strconv.Quote(out)+`)
    return 'forked'
`, func(c *InstanceConfig) { c.FreezeIdle, c.FreezeDelay = true, 0 })
	resp := invoke(t, inst, "r1", "{}", 10*time.Second)
	if resp.ErrorType != "" || string(resp.Payload) != `"forked"` || resp.ProcessesLeft != 0 || strings.Contains(string(resp.Log), "Processes Left") {
		t.Fatalf("response: %+v", resp)
	}
	read := func() string { b, _ := os.ReadFile(out); return string(b) }
	first := read()
	waitfor.Until(t, 30*time.Second, "the child counts on after the response (from "+first+")", func() bool {
		c := read()
		if first == "" {
			first = c
		}
		return c != first
	})
	if resp := invoke(t, inst, "r2", "{}", 10*time.Second); resp.ErrorType != "" {
		t.Fatalf("second invocation: %+v", resp)
	}
}
