package python

import (
	"os/exec"
	"strings"
	"testing"
)

// codecCheck loads the bootstrap as a module (its main does not run) and
// compares its JSON functions with the json package's on values an event,
// a result or an error document can hold, failures included.
const codecCheck = `
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[1])
b = importlib.util.module_from_spec(spec)
before = set(sys.modules)
spec.loader.exec_module(b)
if {"re", "json"} & (set(sys.modules) - before):
    sys.exit("the bootstrap imported re or json")
import json

def outcome(f, *args):
    try:
        return ("ok", f(*args))
    except Exception as e:
        return (type(e).__name__ if isinstance(e, TypeError) else "ValueError", str(e) if isinstance(e, TypeError) else "")

class Thing(object):
    pass

loop = []
loop.append(loop)
values = [
    None, True, False, 0, -1, 2**80, 1.5, -0.0, 1e300, 1e-7, 3.141592653589793, "", "plain",
    "quote \" backslash \\ slash / \b\f\n\r\t \x00 \x1f", "caf\u00e9 \u2603 \U0001F600", "\ud800",
    [], [1, [2, [3, {}]]], (1, "two"), {"a": 1, "b": [True, None], "c": {"d": "e"}},
    {1: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    {"nested": [{"x": [1.0, 2.0]}] * 3}, float("nan"), float("inf"), {1, 2}, Thing(), {(1, 2): "tuple key"},
    loop, [float("-inf")],
]
bad = 0
for allow_nan, mine, theirs in ((True, b._dumps, json.dumps), (False, b._encode_result, json.JSONEncoder(allow_nan=False).encode)):
    for v in values:
        got, want = outcome(mine, v), outcome(theirs, v)
        if got != want:
            bad += 1
            print("encode allow_nan=%s %r: got %r, want %r" % (allow_nan, v, got, want))
    # A failed encoding leaves no trace: the next one of the same list works.
    l = [1]
    l.append(l)
    outcome(mine, l)
    l.pop()
    if outcome(mine, l) != ("ok", "[1]"):
        bad += 1
        print("encoding after a circular reference failed")

docs = [
    '{}', ' {"a": 1} ', '\n\t[1, 2.5, -3e2, "x"]\r\n', '"\\u00e9\\ud83d\\ude00"', '"\\ud800"', '12345678901234567890',
    'true', 'null', 'NaN', '-Infinity', '{"a": {"b": [null, false]}}', '"caf\u00e9"', '{"k": "a", "k": "b"}',
    '', ' ', '{', '{"a": 1} x', '[1,]', "{'a': 1}", '"\x01"', '01', '1 2',
]
for d in docs:
    for s in (d, d.encode("utf-8")):
        got, want = outcome(b._loads, s), outcome(json.loads, s)
        if got[0] == "ok" and want[0] == "ok" and repr(got) == repr(want):
            continue
        if got[0] == want[0] == "ValueError":
            continue
        bad += 1
        print("decode %r: got %r, want %r" % (s, got, want))
print("checked", len(values), "values and", len(docs), "documents;", bad, "differ")
sys.exit(1 if bad else 0)
`

// TestBootstrapJSONMatchesTheJSONModule: the bootstrap does without the
// json package (see _json_codec); on every interpreter found here its
// JSON must be the json package's, byte for byte, and its errors the
// same kind (TypeError messages included: they reach users in
// Runtime.MarshalError).
func TestBootstrapJSONMatchesTheJSONModule(t *testing.T) {
	rts, err := Discover()
	if err != nil || len(rts) == 0 {
		t.Skipf("no Python here: %v", err)
	}
	path, err := WriteBootstrap(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range rts {
		t.Run(rt.Name, func(t *testing.T) {
			out, err := exec.Command(rt.Executable, "-I", "-S", "-c", codecCheck, path).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", rt.Executable, err, out)
			}
			t.Log(strings.TrimSpace(string(out)))
		})
	}
}
