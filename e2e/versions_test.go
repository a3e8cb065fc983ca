package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

const versionedHandler = `def handler(event, context):
    return {"release": RELEASE, "version": context.function_version}
`

// Versions freeze what a function ran; aliases name them and split
// traffic between two; invocations through either report and record
// the version that ran; asynchronous events and schedules may name them;
// bad changes are refused with a reason and change nothing; removing
// the function removes its versions and aliases.
func TestVersionsAndAliasesRouteInvocationsAndAreRecorded(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	dir := t.TempDir()
	deploy := func(release string) {
		t.Helper()
		n.mustCLI(0, "deploy", writeFunction(t, dir, "shop", "RELEASE = '"+release+"'\n"+versionedHandler))
	}
	release := func(ref string) (string, string) {
		t.Helper()
		return invokeRelease(t, n, ref)
	}

	deploy("one")
	if out := n.mustCLI(0, "publish", "shop", "--description", "the first").stdout; !strings.Contains(out, "published shop:1") {
		t.Fatalf("publish: %s", out)
	}
	if out := n.mustCLI(0, "publish", "shop").stdout; !strings.Contains(out, "shop:1 is the latest version already") {
		t.Fatalf("publishing an unchanged function again: %s", out)
	}
	deploy("two")
	n.mustCLI(0, "publish", "shop")
	deploy("three")
	for ref, want := range map[string][2]string{"shop": {"three", "$LATEST"}, "shop:$LATEST": {"three", "$LATEST"}, "shop:1": {"one", "1"}, "shop:2": {"two", "2"}} {
		if rel, ver := release(ref); rel != want[0] || ver != want[1] {
			t.Errorf("invoke %s ran release %q as version %q; want %q as %q", ref, rel, ver, want[0], want[1])
		}
	}
	// Invoking the head and a version alternately keeps both warm.
	release("shop:1")
	if r := n.mustCLI(0, "invoke", "shop:1", "-o", "json"); !strings.Contains(r.stdout, `"one"`) {
		t.Fatalf("shop:1 again: %s", r.stdout)
	}
	var vs []client.Function
	if err := json.Unmarshal([]byte(n.mustCLI(0, "versions", "ls", "shop", "-o", "json").stdout), &vs); err != nil || len(vs) != 2 || vs[0].Description != "the first" || vs[1].Revision != 2 {
		t.Fatalf("versions ls: %+v (%v)", vs, err)
	}

	// An alias, then a weighted rollout to version 2.
	if out := n.mustCLI(0, "aliases", "create", "shop", "live", "--version", "1").stdout; !strings.Contains(out, "shop:live -> 1") {
		t.Fatalf("aliases create: %s", out)
	}
	if rel, ver := release("shop:live"); rel != "one" || ver != "1" {
		t.Fatalf("shop:live ran %q as %q", rel, ver)
	}
	if out := n.mustCLI(0, "aliases", "update", "shop", "live", "--weight", "2=0.5").stdout; !strings.Contains(out, "1 (50%), 2 (50%)") {
		t.Fatalf("aliases update --weight: %s", out)
	}
	seen := map[string]int{}
	c := client.New(n.url, n.token)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 100 && (seen["1"] == 0 || seen["2"] == 0); i++ {
		res, err := c.Invoke(ctx, "shop:live", []byte(`{}`), client.InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Release, Version string }
		json.Unmarshal(res.Payload, &out)
		if res.Version != out.Version {
			t.Fatalf("the header says version %q ran, the function says %q", res.Version, out.Version)
		}
		seen[res.Version]++
	}
	if seen["1"] == 0 || seen["2"] == 0 {
		t.Fatalf("a 50%% split sent 100 invocations to %v", seen)
	}

	// /metrics counts invocations by the version that ran.
	if status, _, body := n.do("GET", "/metrics", "", nil); status != 200 ||
		!strings.Contains(string(body), `nimbus_invocations_by_version_total{function="shop",namespace="default",version="2"}`) ||
		!strings.Contains(string(body), `nimbus_invocations_by_version_total{function="shop",namespace="default",version="$LATEST"}`) {
		t.Errorf("/metrics does not count invocations by version (%d)", status)
	}

	// Records carry the version; an async event through the alias too.
	recs := n.invocations("shop")
	byVersion := map[int64]bool{}
	for _, r := range recs {
		byVersion[r.Version] = true
	}
	if !byVersion[0] || !byVersion[1] || !byVersion[2] {
		t.Errorf("the records' versions: %v", byVersion)
	}
	status, id := n.asyncInvoke("shop:1", []byte(`{}`))
	if status != 202 {
		t.Fatalf("async invoke of shop:1: %d", status)
	}
	rec := n.waitRecord(id, time.Minute, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
	if rec.Version != 1 || !strings.Contains(string(rec.Result), `"one"`) {
		t.Errorf("the async event through shop:1 ran %+v", rec)
	}
	n.mustCLI(0, "schedules", "create", "nightly", "--function", "shop:live", "--expression", "@every 24h")

	// Bad changes: refused, with a reason, and nothing changes.
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"aliases", "create", "shop", "next", "--version", "9"}, "has no version 9"},
		{[]string{"aliases", "create", "shop", "live", "--version", "2"}, "exists already"},
		{[]string{"aliases", "create", "shop", "12", "--version", "2"}, "not a number"},
		{[]string{"aliases", "update", "shop", "live", "--weight", "2=1.5"}, "less than 1"},
		{[]string{"aliases", "update", "shop", "live", "--weight", "1=0.5"}, "routing names a second version"},
		{[]string{"aliases", "update", "shop", "nope", "--version", "1"}, "not found"},
		{[]string{"versions", "rm", "shop", "2"}, "what alias live routes to"},
		{[]string{"versions", "rm", "shop", "$LATEST"}, "not a published version"},
		{[]string{"invoke", "shop:7"}, "not found"},
		{[]string{"invoke", "shop:a.b"}, "neither $LATEST"},
	} {
		if r := n.cli("", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.says) {
			t.Errorf("%v: exit %d, %s; want a refusal saying %q", c.args, r.code, r.stderr, c.says)
		}
	}
	if out := n.mustCLI(0, "aliases", "ls", "shop").stdout; !strings.Contains(out, "1 (50%), 2 (50%)") {
		t.Errorf("refused changes changed the alias:\n%s", out)
	}

	// Pointing the alias at version 2 completes the rollout; version 1
	// can then go.
	n.mustCLI(0, "aliases", "update", "shop", "live", "--version", "2", "--no-weight")
	if rel, _ := release("shop:live"); rel != "two" {
		t.Fatalf("after the rollout shop:live ran %q", rel)
	}
	n.mustCLI(0, "versions", "rm", "shop", "1")
	if r := n.cli("", "invoke", "shop:1"); r.code == 0 {
		t.Errorf("a removed version still runs: %+v", r)
	}

	// The function goes with its versions and aliases (the schedule
	// naming its alias too, with --force).
	n.mustCLI(0, "rm", "shop", "--force")
	deploy("again")
	for _, ref := range []string{"shop:2", "shop:live"} {
		if r := n.cli("", "invoke", ref); r.code == 0 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("%s outlived its function: %+v", ref, r)
		}
	}
	if out := n.mustCLI(0, "publish", "shop").stdout; !strings.Contains(out, "published shop:1") {
		t.Errorf("a new function's first version: %s", out)
	}
}
