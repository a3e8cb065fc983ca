package benchmark

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTheURLPhaseAddsItsKeysOnlyWhenItRan(t *testing.T) {
	without, _ := json.Marshal(Result{})
	if strings.Contains(string(without), "url_") {
		t.Errorf("a run without the URL phase has its keys: %s", without)
	}
	with, _ := json.Marshal(Result{URLResult: &URLResult{URLThroughputRPS: 900, DirectThroughputRPS: 1000, URLRatio: 0.9}})
	var m map[string]float64
	if err := json.Unmarshal(with, &m); err != nil {
		t.Fatal(err)
	}
	if m["url_throughput_rps"] != 900 || m["url_direct_throughput_rps"] != 1000 || m["url_ratio"] != 0.9 {
		t.Errorf("keys of the URL phase: %s", with)
	}
}
