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

// variedRecords are records with what the encoder may write in each
// member: empty and missing members, escapes, multi-byte and astral
// characters, control characters, bad UTF-8 (which the encoder turns
// into U+FFFD), times in other zones, large and fractional numbers, and
// results of every JSON kind.
func variedRecords(rng *rand.Rand, n int) []model.Invocation {
	texts := []string{"", "plain", "a \"quoted\" \\ back/slash", "tab\tnew\nline\rret\bbs\fff", "\x00\x01\x1f ctl",
		"héllo wörld", "日本語", "emoji 😀 and 𝄞", "bad \xff\xfe utf8", "<html>&amp;</html>", "\u2028\u2029", "\ufffd"}
	results := []string{"", `null`, `true`, `false`, `0`, `-12.5e-3`, `"str"`, `"esc \" \\ \u00e9"`, `{}`, `[]`,
		`{"a":[1,{"b":"}"}],"c":"]"}`, `[ 1 , 2 ]`, `{"nested":{"deep":[[[]]]}}`}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -(5*3600 + 30*60))}
	pick := func() string { return texts[rng.IntN(len(texts))] }
	recs := make([]model.Invocation, n)
	for i := range recs {
		r := model.Invocation{ID: fmt.Sprintf("req-%d-%s", i, pick()), Namespace: pick(), Function: pick(),
			Revision: rng.Int64N(1 << 40), Trigger: pick(), Status: pick(),
			Start:      time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))]),
			DurationMS: rng.Float64() * math.Pow(10, float64(rng.IntN(12)-4)), BilledMS: rng.Int64N(1e6),
			MemoryMB: rng.IntN(10240), MaxMemoryMB: rng.IntN(10240), ColdStart: rng.IntN(2) == 0,
			ErrorType: pick(), LogTail: pick() + pick(), Worker: pick(), Destination: pick(),
			Attempts: rng.IntN(4), ProcessesLeft: rng.IntN(3), Version: rng.Int64N(50) - 1}
		if rng.IntN(2) == 0 {
			r.InitMS, r.CPUMS = rng.Float64()*100, -rng.Float64()
		}
		if res := results[rng.IntN(len(results))]; res != "" {
			r.Result = json.RawMessage(res)
		}
		if rng.IntN(3) == 0 {
			r.EnqueuedAt = r.Start.Add(-time.Duration(rng.Int64N(1e12)))
		}
		recs[i] = r
	}
	return recs
}

// A run decodes to what encoding/json decodes it to, for every record the
// encoder can write.
func TestRecordRunsDecodeAsEncodingJSONDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for round := range 50 {
		run, err := json.Marshal(variedRecords(rng, 1+rng.IntN(40)))
		if err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 { // an encoder that indents: white space anywhere between tokens
			var b bytes.Buffer
			if err := json.Indent(&b, run, " ", "\t"); err != nil {
				t.Fatal(err)
			}
			run = b.Bytes()
		}
		var want []model.Invocation
		if err := json.Unmarshal(run, &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeRun[model.Invocation](run, len(want))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("round %d, record %d:\n got %#v\nwant %#v", round, i, got[i], want[i])
				}
			}
		}
		if decodeRecordsFast(run, make([]model.Invocation, len(want))) {
			fast++
		}
	}
	if fast < 45 { // only bad UTF-8 and lone surrogates are left to encoding/json, and the encoder writes neither
		t.Fatalf("the fast decoder took %d runs of 50", fast)
	}
}

// A run that is not what the encoder writes (a byte changed, dropped or
// added anywhere) is refused exactly when encoding/json refuses it, and
// otherwise decodes as encoding/json decodes it: the fast decoder never
// accepts what encoding/json would not, nor reads it otherwise.
func TestDamagedRecordRunsDecodeAsEncodingJSONDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	good, err := json.Marshal(variedRecords(rng, 3))
	if err != nil {
		t.Fatal(err)
	}
	alphabet := []byte(`{}[]",:\ 0123456789.eE+-tfnulrasbU` + "\x00\xff")
	refused := 0
	for i := range 20000 {
		run := append([]byte(nil), good...)
		at := rng.IntN(len(run))
		switch rng.IntN(3) {
		case 0:
			run[at] = alphabet[rng.IntN(len(alphabet))]
		case 1:
			run = append(run[:at], run[at+1:]...)
		default:
			run = append(run[:at], append([]byte{alphabet[rng.IntN(len(alphabet))]}, run[at:]...)...)
		}
		var want []model.Invocation
		wantErr := json.Unmarshal(run, &want)
		if wantErr == nil && len(want) != 3 {
			continue // a record added or lost: decodeRun refuses what its count does not match
		}
		got, err := decodeRun[model.Invocation](run, 3)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("mutation %d: decodeRun says %v, encoding/json %v, of\n%s", i, err, wantErr, run)
		}
		if wantErr != nil {
			refused++
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("mutation %d: decoded otherwise than encoding/json:\n%s\n got %#v\nwant %#v", i, run, got, want)
		}
	}
	if refused < 1000 {
		t.Fatalf("only %d of 20,000 mutations were refused: the test damages too little", refused)
	}
}

// BenchmarkDecodeRecordRun is the decoding of one run of 512 records, by
// the fast decoder and by encoding/json.
func BenchmarkDecodeRecordRun(b *testing.B) {
	recs := make([]model.Invocation, 512)
	for i := range recs {
		recs[i] = model.Invocation{ID: fmt.Sprintf("7f3c9a2e-%08d", i), Namespace: "default", Function: fmt.Sprintf("f%06d", i),
			Revision: 3, Trigger: "sync", Status: model.StatusSuccess, Start: time.Now().UTC(), DurationMS: 1.234,
			BilledMS: 2, MemoryMB: 128, MaxMemoryMB: 31, Result: json.RawMessage(`{"statusCode":200,"body":"ok"}`),
			LogTail: "START\nhello\nEND\n", Worker: "sim0123", CPUMS: 0.9}
	}
	run, err := json.Marshal(recs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(run)))
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if !decodeRecordsFast(run, make([]model.Invocation, 512)) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			part := make([]model.Invocation, 512)
			if err := json.Unmarshal(run, &part); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The record encoder writes what json.Marshal writes, byte for byte, for
// every record the store can hold, and leaves to it (and its error) what
// it cannot write so.
func TestRecordsEncodeAsJSONMarshalDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	recs := variedRecords(rng, 3000)
	// Results as handlers return them (json.dumps puts spaces), HTML
	// in them, floats at the edges of their forms, odd zones.
	spaced := []string{`{"a": 1, "b": [1, 2]}`, "[\n 1,\n\t\"<b>&\"\n]", `{"s": "a b\u2028"}`, ` 7 `, `"x"`, `{"html":"<>&"}`}
	floats := []float64{0, 1e-7, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125, -0.000001, 5e-324, math.MaxFloat64, -1e-10}
	for i := range recs {
		if i%3 == 0 {
			recs[i].Result = json.RawMessage(spaced[rng.IntN(len(spaced))])
		}
		recs[i].DurationMS = floats[rng.IntN(len(floats))]
		if i%5 == 0 {
			recs[i].CPUMS = floats[rng.IntN(len(floats))]
		}
	}
	recs = append(recs,
		model.Invocation{ID: "year 10000", Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		model.Invocation{ID: "negative year", Start: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		model.Invocation{ID: "zone of a day", Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))},
		model.Invocation{ID: "NaN", DurationMS: math.NaN()},
		model.Invocation{ID: "infinite", CPUMS: math.Inf(-1)},
		model.Invocation{ID: "not JSON", Result: json.RawMessage(`{"a":`)},
		model.Invocation{ID: "spaced, not JSON", Result: json.RawMessage(`{"a": }`)},
		model.Invocation{ID: "enqueued in year 10000", EnqueuedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	)
	var e recordEncoder
	for i := range recs {
		want, wantErr := json.Marshal(&recs[i])
		got, err := e.encode(&recs[i])
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("record %d (%s):\n got %s (%v)\nwant %s (%v)", i, recs[i].ID, got, err, want, wantErr)
		}
		if wantErr == nil {
			if again, ok := e.appendRecord(nil, &recs[i]); !ok || !bytes.Equal(again, want) {
				t.Fatalf("record %d (%s) was left to json.Marshal", i, recs[i].ID)
			}
		}
	}
}
