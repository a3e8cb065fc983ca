package pywheel

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

// Every file of a wheel is in its RECORD with the digest and size pip
// checks, and the metadata names the distribution and its requirements.
func TestAWheelRecordsEveryFile(t *testing.T) {
	w := Wheel{Name: "my-pkg", Version: "2.0", Requires: []string{"other>=1"}, Files: map[string]string{"my_pkg/__init__.py": "X = 1\n"}}
	if w.Filename() != "my_pkg-2.0-py3-none-any.whl" {
		t.Errorf("Filename = %s", w.Filename())
	}
	b := w.Bytes()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		r, _ := f.Open()
		c, _ := io.ReadAll(r)
		files[f.Name] = string(c)
	}
	record := files["my_pkg-2.0.dist-info/RECORD"]
	for name, content := range files {
		if name == "my_pkg-2.0.dist-info/RECORD" {
			continue
		}
		sum := sha256.Sum256([]byte(content))
		if !strings.Contains(record, name+",sha256="+base64.RawURLEncoding.EncodeToString(sum[:])) {
			t.Errorf("RECORD lacks %s with its digest:\n%s", name, record)
		}
	}
	if meta := files["my_pkg-2.0.dist-info/METADATA"]; !strings.Contains(meta, "Name: my-pkg\n") || !strings.Contains(meta, "Requires-Dist: other>=1\n") {
		t.Errorf("METADATA:\n%s", meta)
	}
}
