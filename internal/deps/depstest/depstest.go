// Package depstest builds pure-Python wheels and serves them from a
// local package index (PEP 503's simple repository API), so tests of
// dependency builds need no public index.
package depstest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Wheel is a pure-Python distribution: its files by path (module files
// and packages) and the requirements its metadata declares.
type Wheel struct {
	Name     string
	Version  string
	Files    map[string]string
	Requires []string
}

// Filename is the wheel's file name (NAME-VERSION-py3-none-any.whl).
func (w Wheel) Filename() string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", distName(w.Name), w.Version)
}

func distName(n string) string { return strings.ReplaceAll(n, "-", "_") }

// Bytes builds the wheel: the files, then METADATA, WHEEL and a RECORD
// with every file's digest, as pip checks them.
func (w Wheel) Bytes() []byte {
	info := fmt.Sprintf("%s-%s.dist-info", distName(w.Name), w.Version)
	files := map[string]string{}
	for p, c := range w.Files {
		files[p] = c
	}
	var meta strings.Builder
	fmt.Fprintf(&meta, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n", w.Name, w.Version)
	for _, r := range w.Requires {
		fmt.Fprintf(&meta, "Requires-Dist: %s\n", r)
	}
	files[info+"/METADATA"] = meta.String()
	files[info+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: nimbus-depstest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var record strings.Builder
	for _, p := range paths {
		sum := sha256.Sum256([]byte(files[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[p]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	files[info+"/RECORD"] = record.String()
	paths = append(paths, info+"/RECORD")

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range paths {
		f, err := zw.Create(p)
		if err != nil {
			panic(err)
		}
		f.Write([]byte(files[p]))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

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
	files    map[string][]byte
}

var nonAlnum = regexp.MustCompile(`[-_.]+`)

// normalize is PEP 503's name normalisation.
func normalize(name string) string { return strings.ToLower(nonAlnum.ReplaceAllString(name, "-")) }

// NewIndex serves wheels on a loopback port until the test ends.
func NewIndex(t testing.TB, wheels ...Wheel) *Index {
	ix := &Index{byName: map[string][]Wheel{}, files: map[string][]byte{}}
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

// Requests lists the paths the index was asked for, in order.
func (ix *Index) Requests() []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return append([]string(nil), ix.requests...)
}

func (ix *Index) serve(w http.ResponseWriter, r *http.Request) {
	ix.mu.Lock()
	ix.requests = append(ix.requests, r.URL.Path)
	ix.mu.Unlock()
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
		ws, ok := ix.byName[normalize(name)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<!DOCTYPE html><html><body>\n")
		for _, wh := range ws {
			sum := sha256.Sum256(ix.files[wh.Filename()])
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a>\n", html.EscapeString(wh.Filename()), hex.EncodeToString(sum[:]), html.EscapeString(wh.Filename()))
		}
		fmt.Fprintf(w, "</body></html>\n")
	default:
		http.NotFound(w, r)
	}
}
