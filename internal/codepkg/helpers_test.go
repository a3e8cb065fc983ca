package codepkg

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// zent is one entry of a test zip.
type zent struct {
	name   string
	body   string
	mode   fs.FileMode // 0 means a regular 0644 file
	method uint16      // zip.Store unless set
	flags  uint16
}

func file(name, body string) zent { return zent{name: name, body: body} }
func dir(name string) zent        { return zent{name: name, mode: fs.ModeDir | 0o755} }
func symlink(name, target string) zent {
	return zent{name: name, body: target, mode: fs.ModeSymlink | 0o777}
}

// mkzip builds a zip of ents, in order, as given: no checks, no cleaning.
func mkzip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: e.method, Flags: e.flags}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		create := zw.CreateHeader
		if e.method != zip.Store && e.method != zip.Deflate {
			// Unknown methods: store the body raw under that method.
			h.CRC32 = crc32.ChecksumIEEE([]byte(e.body))
			h.CompressedSize64 = uint64(len(e.body))
			h.UncompressedSize64 = uint64(len(e.body))
			create = zw.CreateRaw
		}
		w, err := create(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingZip holds one deflated entry of n zero bytes whose headers claim it
// holds only claimed bytes: a zip bomb that lies.
func lyingZip(t testing.TB, n, claimed int) []byte {
	t.Helper()
	data := make([]byte, n)
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{
		Name:               "bomb.py",
		Method:             zip.Deflate,
		CRC32:              crc32.ChecksumIEEE(data[:claimed]),
		CompressedSize64:   uint64(comp.Len()),
		UncompressedSize64: uint64(claimed),
	}
	h.SetMode(0o644)
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// corruptStored flips a byte of the first stored entry's data.
func corruptStored(t testing.TB, body string) []byte {
	t.Helper()
	b := mkzip(t, file("main.py", body))
	i := bytes.Index(b, []byte(body))
	if i < 0 {
		t.Fatal("body not found in zip")
	}
	b = slices.Clone(b)
	b[i] ^= 0xff
	return b
}

// tree lists every path under dir (slash-separated, relative), sorted.
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTree creates files under dir from a map of slash path -> body.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
