package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

// variedHistories are metric histories with what the encoder may write:
// nil and empty slices, error types, totals, long and empty duration
// buckets, zero and odd times and floats.
func variedHistories(rng *rand.Rand, n int) []model.MetricHistory {
	names := []string{"", "f", "fn-é", "a\"b<c>", "\u2028"}
	minute := func() model.MetricMinute {
		m := model.MetricMinute{Minute: time.Unix(rng.Int64N(4e9), 0).UTC(), Invocations: rng.Int64N(1e6), Errors: rng.Int64N(10),
			Throttles: rng.Int64N(3), ColdStarts: rng.Int64N(100), DurationSumMS: []float64{0, 1.5, 1e-7, 123456.789, 1e21}[rng.IntN(5)]}
		if rng.IntN(3) == 0 {
			m.ErrorTypes = []model.ErrorTypeCount{{Type: "Handled", Count: 2}, {Type: names[rng.IntN(len(names))], Count: 0}}[:1+rng.IntN(2)]
		}
		for range rng.IntN(18) {
			m.Durations = append(m.Durations, rng.Int64N(5000))
		}
		if rng.IntN(2) == 0 {
			m.LastStart = m.Minute.Add(time.Duration(rng.Int64N(6e10))).In(time.FixedZone("", 3600))
		}
		if rng.IntN(2) == 0 {
			m.BilledMS, m.MBMS, m.CPUUS, m.MaxMemoryMB, m.ProvisionedMBMS = rng.Int64N(1e9), rng.Int64N(1e12), rng.Int64N(1e9), 128, rng.Int64N(2)
		}
		return m
	}
	minutes := func() []model.MetricMinute {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []model.MetricMinute{}
		}
		out := make([]model.MetricMinute, 1+rng.IntN(5))
		for i := range out {
			out[i] = minute()
		}
		return out
	}
	hs := make([]model.MetricHistory, n)
	for i := range hs {
		hs[i] = model.MetricHistory{Namespace: names[rng.IntN(len(names))], Function: fmt.Sprint("f", i), Minutes: minutes(), Hours: minutes(), Days: minutes()}
		if rng.IntN(2) == 0 {
			t := minute()
			hs[i].Total = &t
		}
	}
	return hs
}

// Histories are written byte for byte as json.Marshal writes them, and
// read back as encoding/json reads them; what the fast path does not
// follow (a NaN, a year 10000, a null, a repeated key, any damage) is
// written or read by encoding/json, with its error.
func TestMetricHistoriesEncodeAndDecodeAsEncodingJSONDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	hs := variedHistories(rng, 400)
	hs = append(hs, model.MetricHistory{Function: "NaN", Minutes: []model.MetricMinute{{DurationSumMS: math.NaN()}}},
		model.MetricHistory{Function: "year 10000", Total: &model.MetricMinute{Minute: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}})
	var e recordEncoder
	for i := range hs {
		want, wantErr := json.Marshal(&hs[i])
		got, err := e.encodeHistory(&hs[i])
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("history %d:\n got %s (%v)\nwant %s (%v)", i, got, err, want, wantErr)
		}
	}
	hs = hs[:400]
	run, err := json.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	if !decodeHistoriesFast(run, make([]model.MetricHistory, len(hs))) {
		t.Fatal("the fast decoder did not follow what the encoder wrote")
	}
	good, err := json.Marshal(hs[:12]) // damaged below: a short run, so each is read quickly
	if err != nil {
		t.Fatal(err)
	}
	hs = hs[:12]
	for i := range 5000 {
		run := good
		if i > 0 { // the first as written, the rest each damaged once
			run = append([]byte(nil), good...)
			at := rng.IntN(len(run))
			switch c := []byte(`{}[]",:0.e-nul ` + "\x00")[rng.IntN(16)]; rng.IntN(3) {
			case 0:
				run[at] = c
			case 1:
				run = append(run[:at], run[at+1:]...)
			default:
				run = append(run[:at], append([]byte{c}, run[at:]...)...)
			}
		}
		var want []model.MetricHistory
		wantErr := json.Unmarshal(run, &want)
		if wantErr == nil && len(want) != len(hs) {
			continue
		}
		got, err := decodeRun[model.MetricHistory](run, len(hs))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("damage %d: decodeRun says %v, encoding/json %v", i, err, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("damage %d: read otherwise than encoding/json reads it", i)
		}
	}
	// A key twice: encoding/json merges the two, the fast path leaves it.
	twice := []byte(`[{"namespace":"default","function":"f","minutes":[],"total":{"minute":"2026-12-07T00:00:00Z","invocations":1,"errors":0,"throttles":0,"cold_starts":0,"duration_sum_ms":0},"total":{"errors":2}}]`)
	if decodeHistoriesFast(twice, make([]model.MetricHistory, 1)) {
		t.Fatal("a history with a key twice was read by the fast path")
	}
	var want []model.MetricHistory
	json.Unmarshal(twice, &want)
	if got, err := decodeRun[model.MetricHistory](twice, 1); err != nil || !reflect.DeepEqual(got, want) || got[0].Total.Invocations != 1 {
		t.Fatalf("a key twice: %+v (%v), encoding/json %+v", got, err, want)
	}
}

// BenchmarkMetricHistories writes and reads 512 histories of a function
// invoked every minute for a while (60 minutes, 24 hours), by the fast
// path and by encoding/json.
func BenchmarkMetricHistories(b *testing.B) {
	hs := make([]model.MetricHistory, 512)
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range hs {
		m := model.MetricMinute{Minute: at, Invocations: 40, ColdStarts: 1, DurationSumMS: 123.456, Durations: []int64{5, 10, 20, 5},
			LastStart: at.Add(59 * time.Second), BilledMS: 200, MBMS: 25600, MaxMemoryMB: 31}
		hs[i] = model.MetricHistory{Namespace: "default", Function: fmt.Sprintf("f%06d", i), Minutes: make([]model.MetricMinute, 60), Hours: make([]model.MetricMinute, 24)}
		for k := range hs[i].Minutes {
			hs[i].Minutes[k] = m
		}
		for k := range hs[i].Hours {
			hs[i].Hours[k] = m
		}
	}
	run, _ := json.Marshal(hs)
	b.SetBytes(int64(len(run)))
	var e recordEncoder
	b.Run("write/fast", func(b *testing.B) {
		for b.Loop() {
			for i := range hs {
				e.encodeHistory(&hs[i])
			}
		}
	})
	b.Run("write/encoding-json", func(b *testing.B) {
		for b.Loop() {
			for i := range hs {
				json.Marshal(&hs[i])
			}
		}
	})
	b.Run("read/fast", func(b *testing.B) {
		for b.Loop() {
			if !decodeHistoriesFast(run, make([]model.MetricHistory, len(hs))) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("read/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var out []model.MetricHistory
			json.Unmarshal(run, &out)
		}
	})
}
