package python

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func responseFrame(kind byte, rss uint64, id, body string) []byte {
	b := []byte{kind, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(id))}
	for k := range 8 {
		b[8-k] = byte(rss >> (8 * k))
	}
	b = append(b, id...)
	return appendFrame(nil, append(b, body...))
}

func TestReadFrame(t *testing.T) {
	ok := responseFrame(kindOK, 2048, "req-1", `{"a":1}`)
	big := responseFrame(kindOK, 1, "req-2", `"`+string(bytes.Repeat([]byte("x"), 10000))+`"`)
	cases := []struct {
		name      string
		in        io.Reader
		wantBody  []byte
		wantErr   error
		tooLarge  bool
		wantShare bool
	}{
		{"a small frame arrives in one read, in the scratch buffer", bytes.NewReader(ok), ok[4:], nil, false, true},
		{"a frame split byte by byte is reassembled", iotest.OneByteReader(bytes.NewReader(ok)), ok[4:], nil, false, true},
		{"a frame larger than the scratch buffer gets its own", bytes.NewReader(big), big[4:], nil, false, false},
		{"bytes after the frame are garbage", bytes.NewReader(append(append([]byte(nil), ok...), 'x')), nil, errBadFrame, false, false},
		{"a response over the limit is refused from its length", bytes.NewReader(responseFrame(kindOK, 0, "r", string(make([]byte, 200)))), nil, nil, true, false},
		{"garbage over the limit is garbage", bytes.NewReader([]byte("garbage!garbage!")), nil, errBadFrame, false, false},
		{"a cut header is garbage", bytes.NewReader([]byte{0, 0}), nil, errBadFrame, false, false},
		{"a cut body is garbage", bytes.NewReader(ok[:len(ok)-1]), nil, errBadFrame, false, false},
		{"nothing is EOF", bytes.NewReader(nil), nil, io.EOF, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := 64 << 10
			if c.tooLarge {
				limit = 100
			}
			f := readFrame(c.in, make([]byte, 4096), limit)
			if c.tooLarge {
				if !f.tooLarge || f.err == nil {
					t.Fatalf("frame %+v, want tooLarge", f)
				}
				return
			}
			if c.wantErr != nil {
				if !errors.Is(f.err, c.wantErr) {
					t.Fatalf("err %v, want %v", f.err, c.wantErr)
				}
				return
			}
			if f.err != nil || !bytes.Equal(f.body, c.wantBody) || f.shared != c.wantShare {
				t.Fatalf("frame err %v shared %v body %q", f.err, f.shared, f.body)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	r, ok := parseResponse(responseFrame(kindError, 1<<40, "abc", `{"errorType":"X"}`)[4:])
	if !ok || r.ok || r.maxRSSKB != 1<<40 || string(r.id) != "abc" || string(r.body) != `{"errorType":"X"}` {
		t.Fatalf("%+v %v", r, ok)
	}
	for _, bad := range [][]byte{nil, []byte("{}"), []byte(`{"ok":true,"request_id":"abc"}`), responseFrame(kindOK, 0, "abc", "")[4:8]} {
		if _, ok := parseResponse(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestRequestFrame(t *testing.T) {
	cases := []struct{ payload, event string }{
		{`{"k":[1,2]}`, `{"k":[1,2]}`},
		{"  ", `{}`},
		{"not json", `"not json"`},
	}
	for _, c := range cases {
		b := appendRequest(nil, "id-1", []byte(c.payload), 1234)
		want := append([]byte{0, 0, 0, 0, kindInvoke, 0, 0, 0, 0, 0, 0, 4, 0xd2, 0, 4}, "id-1"+c.event...)
		want[3] = byte(len(want) - 4)
		if !bytes.Equal(b, want) {
			t.Errorf("%q: frame %q, want %q", c.payload, b, want)
		}
	}
}

func TestLogFraming(t *testing.T) {
	inst := &Instance{cfg: InstanceConfig{MemoryMB: 256}, version: "7", initLog: []byte("init line"), initDur: 12345 * time.Microsecond, lastRSSK: 30000}
	v := invocation{inst: inst, req: Request{RequestID: "rid"}, first: true, cold: true, dur: 1500 * time.Microsecond}
	var resp Response
	v.fill(&resp, []byte("a\nb"), "extra")
	want := "init line\nSTART RequestId: rid Version: 7\na\nb\nextra\nEND RequestId: rid\n" +
		"REPORT RequestId: rid\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\tInit Duration: 12.35 ms\n"
	if string(resp.Log) != want || resp.InitDuration != inst.initDur {
		t.Fatalf("log\n%q\nwant\n%q (init %v)", resp.Log, want, resp.InitDuration)
	}
	// An instance started ahead (provisioned): its start's log comes with
	// its first invocation, but no Init Duration.
	ready := invocation{inst: inst, req: Request{RequestID: "rid", Ready: true}, first: true, dur: 1500 * time.Microsecond}
	resp = Response{}
	ready.fill(&resp, []byte("a\nb"), "extra")
	want = strings.Replace(want, "\tInit Duration: 12.35 ms", "", 1)
	if string(resp.Log) != want || resp.InitDuration != 0 {
		t.Fatalf("provisioned: log\n%q\nwant\n%q (init %v)", resp.Log, want, resp.InitDuration)
	}
	v.first, v.cold = false, false
	v.fill(&resp, nil, "")
	want = "START RequestId: rid Version: 7\nEND RequestId: rid\n" +
		"REPORT RequestId: rid\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\n"
	if string(resp.Log) != want {
		t.Fatalf("log\n%q\nwant\n%q", resp.Log, want)
	}
}
