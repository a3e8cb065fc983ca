// Package depstest builds pure-Python wheels and serves them from a
// local package index (PEP 503's simple repository API), so tests of
// dependency builds need no public index.
package depstest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"nimbus/internal/pywheel"
)

// Wheel is a pure-Python distribution (pywheel.Wheel).
type Wheel = pywheel.Wheel

// WriteDir writes the wheels into dir (a --find-links directory).
func WriteDir(t testing.TB, dir string, wheels ...Wheel) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range wheels {
		if err := os.WriteFile(filepath.Join(dir, w.Filename()), w.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Index is a local simple repository serving a set of wheels at URL
// (the value of --index-url), counting the requests it answers.
type Index struct {
	URL string

	mu       sync.Mutex
	requests []string
	byName   map[string][]Wheel
	extra    map[string][]string // further files by project
	files    map[string][]byte
}

var nonAlnum = regexp.MustCompile(`[-_.]+`)

// normalize is PEP 503's name normalisation.
func normalize(name string) string { return strings.ToLower(nonAlnum.ReplaceAllString(name, "-")) }

// NewIndex serves wheels on a loopback port until the test ends.
func NewIndex(t testing.TB, wheels ...Wheel) *Index {
	ix := &Index{byName: map[string][]Wheel{}, extra: map[string][]string{}, files: map[string][]byte{}}
	for _, w := range wheels {
		n := normalize(w.Name)
		ix.byName[n] = append(ix.byName[n], w)
		ix.files[w.Filename()] = w.Bytes()
	}
	srv := httptest.NewServer(http.HandlerFunc(ix.serve))
	t.Cleanup(srv.Close)
	ix.URL = srv.URL + "/simple/"
	return ix
}

// AddFile serves data as file name of project (an sdist, say) beside
// its wheels.
func (ix *Index) AddFile(project, name string, data []byte) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := normalize(project)
	ix.extra[n] = append(ix.extra[n], name)
	ix.files[name] = data
}

// AddSdist serves Sdist(name, version, buildCode) beside the wheels.
func (ix *Index) AddSdist(name, version, buildCode string) {
	file, data := Sdist(name, version, buildCode)
	ix.AddFile(name, file, data)
}

// Requests lists the paths the index was asked for, in order.
func (ix *Index) Requests() []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return append([]string(nil), ix.requests...)
}

func (ix *Index) serve(w http.ResponseWriter, r *http.Request) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.requests = append(ix.requests, r.URL.Path)
	switch {
	case strings.HasPrefix(r.URL.Path, "/files/"):
		b, ok := ix.files[strings.TrimPrefix(r.URL.Path, "/files/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/simple/"):
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		n := normalize(name)
		var files []string
		for _, wh := range ix.byName[n] {
			files = append(files, wh.Filename())
		}
		files = append(files, ix.extra[n]...)
		if len(files) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<!DOCTYPE html><html><body>\n")
		for _, f := range files {
			sum := sha256.Sum256(ix.files[f])
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a>\n", html.EscapeString(f), hex.EncodeToString(sum[:]), html.EscapeString(f))
		}
		fmt.Fprintf(w, "</body></html>\n")
	default:
		http.NotFound(w, r)
	}
}

// Sdist is a source distribution NAME-VERSION.tar.gz whose build
// backend is in the archive itself (PEP 517 backend-path): building it
// runs backend.py, which runs buildCode (Python, indented by four
// spaces inside build_wheel; it may assign module, the text of the one
// module NAME.py the wheel holds) and writes the wheel. No setuptools
// is needed, so a test builds it without any index but its own.
func Sdist(name, version, buildCode string) (filename string, data []byte) {
	backend := `import base64, hashlib, os, zipfile

NAME, VERSION = ` + strconv.Quote(name) + `, ` + strconv.Quote(version) + `


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module = ""
` + indent(buildCode, "    ") + `
    info = "%s-%s.dist-info" % (NAME, VERSION)
    files = {NAME + ".py": module,
             info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (NAME, VERSION),
             info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: depstest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for p, c in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (p, h, len(c)))
    record.append(info + "/RECORD,,")
    files[info + "/RECORD"] = "\n".join(record) + "\n"
    whl = "%s-%s-py3-none-any.whl" % (NAME, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, whl), "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
    return whl
`
	root := name + "-" + version
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{
		{root + "/PKG-INFO", "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"},
		{root + "/pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n"},
		{root + "/backend.py", backend},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	gz.Close()
	return root + ".tar.gz", buf.Bytes()
}

func indent(code, by string) string {
	lines := strings.Split(strings.TrimRight(code, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n")
}
