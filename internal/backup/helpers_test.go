package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"
)

func jsonIndent(m Meta) ([]byte, error) { return json.MarshalIndent(m, "", "  ") }

// eachEntry calls f with each entry of a backup archive.
func eachEntry(archive []byte, f func(name string, b []byte)) error {
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		f(h.Name, b)
	}
}

// tarGz writes entries as a gzip-compressed tar archive.
func tarGz(t *testing.T, entries []struct {
	name string
	b    []byte
}) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o600, Size: int64(len(e.b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.b)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}
