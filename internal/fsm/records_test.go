package fsm

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

var update = flag.Bool("update", false, "rewrite testdata (never for a format already written to Raft logs)")

// filled returns an Invocation with every field set to a value that is
// not its zero value, found by reflection: a field added to
// model.Invocation and forgotten by the binary encoding fails the round
// trip below.
func filled(t *testing.T, seed int) model.Invocation {
	t.Helper()
	var inv model.Invocation
	v := reflect.ValueOf(&inv).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(t0.Add(time.Duration(seed*1000+i) * time.Millisecond)))
		case f.Type() == reflect.TypeOf(json.RawMessage(nil)):
			f.Set(reflect.ValueOf(json.RawMessage(fmt.Sprintf(`{"%s":%d}`, name, seed))))
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("%s-%d-é\x00", name, seed))
		case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
			f.SetInt(int64(seed*100+i) - 50)
		case f.Kind() == reflect.Float64:
			f.SetFloat(float64(seed) + 0.125*float64(i))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("model.Invocation.%s has a kind (%s) the test does not fill: teach it, and the binary records encoding", name, f.Kind())
		}
	}
	return inv
}

// throttles are throttle counts with every field set, one in another
// namespace.
func throttles() []model.ThrottleCount {
	return []model.ThrottleCount{
		{Namespace: "default", Function: "hello", Minute: t0, Count: 3},
		{Namespace: "team", Function: "hello", Minute: t0.Add(time.Minute), Count: 1 << 40},
	}
}

func TestBinaryRecordsKeepEveryField(t *testing.T) {
	for _, v := range []byte{recordsV2, recordsV3, recordsV4, recordsV5} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) { binaryRoundTrip(t, v) })
	}
}

// binaryRoundTrip encodes a batch that needs version (2: no throttles
// and no CPU times, what the release before version 3 reads; 3: with
// throttles; 4: with CPU times and metric retentions too; 5: with a
// record of a published version too).
func binaryRoundTrip(t *testing.T, version byte) {
	in := RecordInvocations{
		Records:   []model.Invocation{filled(t, 1), filled(t, 2), {ID: "zero-fields"}},
		Retention: model.Retention{PerFunction: 77, MaxAge: 90 * time.Minute},
		Now:       t0.Add(time.Hour),
	}
	if version >= recordsV3 {
		in.Throttles = throttles()
	}
	if version >= recordsV4 {
		in.Retention.MetricHours = 100 * time.Hour
	} else {
		in.Records[0].CPUMS, in.Records[1].CPUMS = 0, 0
	}
	if version < recordsV5 {
		in.Records[0].Version, in.Records[1].Version = 0, 0
	}
	_, data, err := encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != byte(RecordInvocationsType) || data[1] != version {
		t.Fatalf("encoding starts % x; want the type then version %d", data[:2], version)
	}
	out, err := decodeRecords(data[1:])
	if err != nil {
		t.Fatal(err)
	}
	// What JSON makes of the same command is what the binary form must
	// give back: the two encodings coexist in old Raft logs.
	var viaJSON RecordInvocations
	b, _ := json.Marshal(in)
	if err := json.Unmarshal(b, &viaJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, viaJSON) {
		t.Fatalf("binary round trip differs from JSON's:\n got %+v\nwant %+v", out, viaJSON)
	}
	if !reflect.DeepEqual(out.Records[0], in.Records[0]) {
		t.Fatalf("record changed:\n got %+v\nwant %+v", out.Records[0], in.Records[0])
	}
}

// Entries committed before the binary encoding hold JSON; they still apply.
func TestJSONRecordsStillApply(t *testing.T) {
	f, s := newFSM()
	body, err := json.Marshal(RecordInvocations{Records: []model.Invocation{{ID: "old", Function: "hello", Start: t0}}, Retention: model.DefaultRetention(), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Type: raft.LogCommand, Data: append([]byte{byte(RecordInvocationsType)}, body...)})
	if _, ok := res.(RecordInvocationsResult); !ok {
		t.Fatalf("apply of a JSON entry: %v", res)
	}
	if r, err := s.Record("old"); err != nil || r.Function != "hello" {
		t.Fatalf("record of a JSON entry: %+v %v", r, err)
	}
}

// A damaged entry is refused whole, whatever its length: no record of it
// is stored, nothing panics, and a count it cannot hold is not believed.
func TestMalformedBinaryRecordsAreRefused(t *testing.T) {
	_, data, err := encode(RecordInvocations{
		Records: []model.Invocation{filled(t, 1), filled(t, 2)}, Throttles: throttles(), Retention: model.DefaultRetention(), Now: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	f, s := newFSM()
	for n := 1; n < len(data); n++ {
		res := f.Apply(&raft.Log{Type: raft.LogCommand, Data: data[:n]})
		if err, ok := res.(error); !ok || !strings.Contains(err.Error(), "RecordInvocations") {
			t.Fatalf("entry cut to %d of %d bytes: got %v, want a decode error", n, len(data), res)
		}
	}
	huge := append([]byte{byte(RecordInvocationsType), recordsV1, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Data: huge}).(error); !ok {
		t.Fatal("a count of 4 billion records in a 10-byte entry was accepted")
	}
	// The smallest record there is takes minRecordBytes.
	if b := encodeRecords(nil, RecordInvocations{Records: []model.Invocation{{}}}); len(b) != 1+1+1+1+1+minRecordBytes {
		t.Fatalf("an empty record takes %d bytes after the header, want minRecordBytes = %d", len(b)-5, minRecordBytes)
	}
	if got := s.Records(state.RecordQuery{}); len(got) != 0 {
		t.Fatalf("damaged entries stored %d records", len(got))
	}
	if _, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Data: append(data, 0)}).(error); !ok {
		t.Fatal("an entry with a trailing byte was accepted")
	}
}

// batch is what the recorder gathered in 20 ms of a warm load (it now
// gathers for 100 ms, up to 512 records an entry).
func batch(n int) RecordInvocations {
	c := RecordInvocations{Retention: model.DefaultRetention(), Now: t0}
	for i := range n {
		c.Records = append(c.Records, model.Invocation{
			ID: fmt.Sprintf("019ab2c4-5e6f-7a8b-9c0d-%012x", i), Namespace: "default", Function: "noop", Revision: 1,
			Trigger: "sync", Status: model.StatusSuccess, Start: t0.Add(time.Duration(i) * 150 * time.Microsecond),
			DurationMS: 0.061, BilledMS: 1, MemoryMB: 128, MaxMemoryMB: 9, Worker: "dev-1",
			LogTail: "START RequestId: x Version: 1\nEND RequestId: x\nREPORT RequestId: x\tDuration: 0.06 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB\n",
		})
	}
	return c
}

// BenchmarkDecodeRecords compares the two encodings of a 130-record batch
// (go test ./internal/fsm -bench DecodeRecords).
func BenchmarkDecodeRecords(b *testing.B) {
	c := batch(130)
	bin := encodeRecords(nil, c)
	js, _ := json.Marshal(c)
	b.Run("binary", func(b *testing.B) {
		b.SetBytes(int64(len(bin)))
		for range b.N {
			if _, err := decodeRecords(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for range b.N {
			var out RecordInvocations
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Entries committed in version 1 (before processes_left) still decode,
// with no processes left.
func TestVersion1RecordsStillDecode(t *testing.T) {
	in := RecordInvocations{Records: []model.Invocation{filled(t, 1)}, Now: time.Unix(1e9, 0).UTC()}
	body := encodeRecordsVersion(nil, in, recordsV1)
	out, err := decodeRecords(body)
	if err != nil {
		t.Fatal(err)
	}
	want := in.Records[0]
	want.ProcessesLeft, want.CPUMS, want.Version = 0, 0, 0
	if !reflect.DeepEqual(out.Records[0], want) {
		t.Fatalf("decoded %+v\nwant    %+v", out.Records[0], want)
	}
}

// The binary records encoding is pinned byte for byte: testdata holds
// batches encoded by the code before it encoded model.Invocation (when it
// followed client.Invocation's fields), in both versions, and Raft logs
// hold such bytes forever.
func TestBinaryRecordsMatchWhatOlderReleasesWrote(t *testing.T) {
	in := RecordInvocations{
		Records:   []model.Invocation{filled(t, 1), {ID: "zero-fields"}},
		Retention: model.Retention{PerFunction: 77, MaxAge: 90 * time.Minute, MetricMinutes: 3 * time.Hour, MetricHours: 240 * time.Hour, MetricDays: 400 * 24 * time.Hour},
		Now:       t0.Add(time.Hour),
	}
	in.Throttles = throttles()
	for _, v := range []byte{recordsV1, recordsV2, recordsV3, recordsV4, recordsV5} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			path := fmt.Sprintf("testdata/records-v%d.hex", v)
			got := hex.EncodeToString(encodeRecordsVersion(nil, in, v))
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != strings.TrimSpace(string(want)) {
				t.Fatalf("the binary encoding changed:\n got %s\nwant %s", got, want)
			}
			raw, _ := hex.DecodeString(strings.TrimSpace(string(want)))
			out, err := decodeRecords(raw)
			if err != nil {
				t.Fatal(err)
			}
			recs := slices.Clone(in.Records)
			if v == recordsV1 {
				recs[0].ProcessesLeft = 0
			}
			if v < recordsV4 {
				recs[0].CPUMS = 0
			}
			if v < recordsV5 {
				recs[0].Version = 0
			}
			if ret := out.Retention; v >= recordsV4 && ret != in.Retention || v < recordsV4 && ret.MetricDays != 0 {
				t.Fatalf("decoded retention %+v", ret)
			}
			if !reflect.DeepEqual(out.Records, recs) {
				t.Fatalf("decoded %+v\nwant    %+v", out.Records, recs)
			}
			if want := in.Throttles; v < recordsV3 && out.Throttles != nil || v >= recordsV3 && !reflect.DeepEqual(out.Throttles, want) {
				t.Fatalf("decoded throttles %+v", out.Throttles)
			}
		})
	}
}
