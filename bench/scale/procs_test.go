package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// A quantile in a histogram's last bucket (+Inf) is written to -save's
// JSON as "+Inf": encoding/json refused the whole result, and the file
// was left empty.
func TestAQuantileInTheLastBucketIsSaved(t *testing.T) {
	h := histogram{bounds: []float64{0.001, 0.01, math.Inf(1)}, counts: []float64{50, 60, 100}}
	b, err := json.Marshal(h.summary("s1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, `"p50_le_ms":1`) || !strings.Contains(got, `"p99_le_ms":"+Inf"`) {
		t.Fatalf("saved %s, want p50 1 ms and p99 +Inf", got)
	}
}
