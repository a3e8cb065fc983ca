package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func sample(t *testing.T) ([]byte, Meta, map[string][]byte) {
	t.Helper()
	blobs := map[string][]byte{}
	var digests []string
	for _, s := range []string{"code one", "code two", strings.Repeat("layer ", 10000)} {
		d := digest([]byte(s))
		blobs[d] = []byte(s)
		digests = append(digests, d)
	}
	var buf bytes.Buffer
	var last int64
	state := `{"nimbus_snapshot":2}` + "\n{}\n"
	m, err := Write(&buf, Meta{CreatedAt: time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC), Server: "s1", Index: 42, Term: 3},
		strings.NewReader(state), int64(len(state)), contentsOf(digests, map[string]int{"functions": 2}),
		func(d string) ([]byte, error) { return blobs[d], nil }, func(done int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	if last != m.Size()+int64(len(mustMeta(t, &buf))) {
		t.Errorf("progress ended at %d bytes; the entries are %d", last, m.Size())
	}
	return buf.Bytes(), m, blobs
}

// mustMeta is the size of the description entry, read back.
func mustMeta(t *testing.T, buf *bytes.Buffer) []byte {
	m, _, err := Read(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := jsonIndent(m)
	return b
}

func TestABackupReadsBackWithEveryBlobChecked(t *testing.T) {
	archive, written, blobs := sample(t)
	got := map[string][]byte{}
	m, state, err := Read(bytes.NewReader(archive), func(d string, b []byte) error { got[d] = b; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if m.Index != 42 || m.Term != 3 || m.Server != "s1" || m.Counts["functions"] != 2 || m.Format != Format {
		t.Errorf("meta %+v", m)
	}
	if m.State != written.State || len(m.Blobs) != 3 || !strings.HasPrefix(string(state), `{"nimbus_snapshot":2}`) {
		t.Errorf("state %+v (%q), blobs %d", m.State, state, len(m.Blobs))
	}
	for d, b := range blobs {
		if !bytes.Equal(got[d], b) {
			t.Errorf("blob %s came back as %q", d, got[d])
		}
	}
}

func TestACorruptBackupIsRefusedSayingWhy(t *testing.T) {
	archive, _, _ := sample(t)
	// Rewrite the archive with one entry altered, dropped or added.
	rewrite := func(edit func(name string, b []byte) (string, []byte, bool)) []byte {
		var entries []struct {
			name string
			b    []byte
		}
		if err := eachEntry(archive, func(name string, b []byte) {
			if n, nb, keep := edit(name, b); keep {
				entries = append(entries, struct {
					name string
					b    []byte
				}{n, nb})
			}
		}); err != nil {
			t.Fatal(err)
		}
		return tarGz(t, entries)
	}
	cases := []struct {
		name    string
		archive []byte
		says    string
	}{
		{"cut short", archive[:len(archive)/2], "corrupt"},
		{"not a backup", []byte("hello"), "not a gzip stream"},
		{"a blob altered", rewrite(func(n string, b []byte) (string, []byte, bool) {
			if strings.HasPrefix(n, blobDir) && len(b) < 20 {
				return n, append([]byte("x"), b...), true
			}
			return n, b, true
		}), "does not match its digest"},
		{"a blob missing", rewrite(func(n string, b []byte) (string, []byte, bool) {
			return n, b, !(strings.HasPrefix(n, blobDir) && len(b) > 1000)
		}), "holds 2 blobs, its description lists 3"},
		{"the state altered", rewrite(func(n string, b []byte) (string, []byte, bool) {
			if n == stateName {
				return n, []byte("{}"), true
			}
			return n, b, true
		}), "the state does not match its checksum"},
		{"no description", rewrite(func(n string, b []byte) (string, []byte, bool) { return n, b, n != metaName }), "ends before its description"},
		{"a stray entry", rewrite(func(n string, b []byte) (string, []byte, bool) {
			if n == stateName {
				return "etc/passwd", b, true
			}
			return n, b, true
		}), "unexpected entry etc/passwd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(c.archive), nil)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v; want ErrCorrupt saying %q", err, c.says)
			}
		})
	}
}

// contentsOf is a Write contents function that names digests and counts.
func contentsOf(digests []string, counts map[string]int) func() ([]string, map[string]int, error) {
	return func() ([]string, map[string]int, error) { return digests, counts, nil }
}

func TestABlobThatCannotBeReadFailsTheBackup(t *testing.T) {
	var buf bytes.Buffer
	x := contentsOf([]string{digest([]byte("x"))}, nil)
	_, err := Write(&buf, Meta{}, strings.NewReader("{}"), 2, x, func(string) ([]byte, error) { return nil, fmt.Errorf("gone") }, nil)
	if err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("err = %v", err)
	}
	_, err = Write(&buf, Meta{}, strings.NewReader("{}"), 2, x, func(string) ([]byte, error) { return []byte("y"), nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "do not match its digest") {
		t.Fatalf("err = %v", err)
	}
}

// A state that gives fewer or more bytes than announced, or fails as it
// is read, fails the backup, as does a state its reader could not make
// out (contents' error).
func TestAStateThatIsNotWhatWasAnnouncedFailsTheBackup(t *testing.T) {
	none := contentsOf(nil, nil)
	for _, c := range []struct {
		state    io.Reader
		size     int64
		contents func() ([]string, map[string]int, error)
		want     string
	}{
		{strings.NewReader("{}"), 3, none, "2 bytes where 3 were announced"},
		{strings.NewReader("{}{}"), 2, none, "write too long"},
		{io.MultiReader(strings.NewReader("{"), iotest.ErrReader(errors.New("disk gone"))), 2, none, "disk gone"},
		{strings.NewReader("{}"), 2, func() ([]string, map[string]int, error) { return nil, nil, errors.New("not a snapshot") }, "not a snapshot"},
	} {
		_, err := Write(io.Discard, Meta{}, c.state, c.size, c.contents, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v", c.want, err)
		}
	}
}
