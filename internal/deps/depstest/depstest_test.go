package depstest

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestTheIndexServesEachProjectsWheels(t *testing.T) {
	w := Wheel{Name: "Hello-World", Version: "1.2", Files: map[string]string{"hello.py": "X = 1\n"}}
	ix := NewIndex(t, w)
	get := func(path string) (int, []byte) {
		resp, err := http.Get(strings.TrimSuffix(ix.URL, "/simple/") + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, page := get("/simple/hello-world/")
	if code != 200 || !strings.Contains(string(page), w.Filename()+"#sha256=") {
		t.Fatalf("project page: %d %s", code, page)
	}
	if code, _ := get("/simple/other/"); code != 404 {
		t.Errorf("an unknown project answered %d, want 404", code)
	}
	code, whl := get("/files/" + w.Filename())
	if code != 200 {
		t.Fatalf("wheel: %d", code)
	}
	zr, err := zip.NewReader(bytes.NewReader(whl), int64(len(whl)))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	for _, want := range []string{"hello.py", "Hello_World-1.2.dist-info/METADATA", "Hello_World-1.2.dist-info/RECORD"} {
		if !names[want] {
			t.Errorf("the wheel lacks %s", want)
		}
	}
	if n := len(ix.Requests()); n != 3 {
		t.Errorf("the index counted %d requests, want 3", n)
	}
}
