// Package pywheel builds pure-Python wheels (PEP 427) in memory: the
// files, METADATA, WHEEL and a RECORD with every file's digest, as pip
// checks them. Tests and the benchmark make the packages their
// dependency builds install with it; no public index is needed.
package pywheel

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
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
