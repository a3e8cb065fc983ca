package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestFunctionsAreListedAPageAtATimeWithLimitAndAfter(t *testing.T) {
	a := newTestAPI(t)
	for i := range 5 {
		a.deployed("default", fmt.Sprintf("f%d", i))
	}
	a.deployed("other", "f9")
	type page struct {
		Functions []struct {
			Name string `json:"name"`
		} `json:"functions"`
		Next *string `json:"next"`
	}
	get := func(path string) page {
		t.Helper()
		var p page
		if err := json.Unmarshal(a.must(200, req{method: "GET", path: path, key: a.admin}).Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	names := func(p page) string {
		var out []string
		for _, f := range p.Functions {
			out = append(out, f.Name)
		}
		return fmt.Sprint(out)
	}
	if p := get("/v1/functions"); names(p) != "[f0 f1 f2 f3 f4]" || p.Next != nil {
		t.Fatalf("without a limit: %s next %v, want the namespace's five functions (within the default page) and no next", names(p), p.Next)
	}
	p := get("/v1/functions?limit=2")
	if names(p) != "[f0 f1]" || p.Next == nil || *p.Next != "f1" {
		t.Fatalf("first page: %s next %v", names(p), p.Next)
	}
	p = get("/v1/functions?limit=2&after=f1")
	if names(p) != "[f2 f3]" || p.Next == nil || *p.Next != "f3" {
		t.Fatalf("second page: %s next %v", names(p), p.Next)
	}
	p = get("/v1/functions?limit=2&after=f3")
	if names(p) != "[f4]" || p.Next != nil {
		t.Fatalf("last page: %s next %v, want f4 and no next", names(p), p.Next)
	}
	if p := get("/v1/functions?limit=2&after=f4"); p.Functions == nil || len(p.Functions) != 0 {
		t.Fatalf("past the end: %s, want an empty list", names(p))
	}
	a.must(400, req{method: "GET", path: "/v1/functions?limit=0", key: a.admin})
}

func TestAListWithoutALimitIsTheDefaultPage(t *testing.T) {
	a := newTestAPI(t)
	for i := range defaultListPage + 1 {
		a.deployed("default", fmt.Sprintf("f%05d", i))
	}
	var p struct {
		Functions []struct {
			Name string `json:"name"`
		} `json:"functions"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/functions", key: a.admin}).Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("f%05d", defaultListPage-1)
	if len(p.Functions) != defaultListPage || p.Functions[0].Name != "f00000" || p.Functions[len(p.Functions)-1].Name != last || p.Next != last {
		t.Fatalf("got %d functions, next %q; want the first %d and next %q", len(p.Functions), p.Next, defaultListPage, last)
	}
	after := p.Next
	p.Functions, p.Next = nil, ""
	if err := json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/functions?after=" + after, key: a.admin}).Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("f%05d", defaultListPage); len(p.Functions) != 1 || p.Functions[0].Name != want || p.Next != "" {
		t.Fatalf("the second page: %+v next %q; want only %s and no next", p.Functions, p.Next, want)
	}
}

// Schedules are listed a page at a time as functions are, and a page
// after a name of one function's schedules holds that function's only.
func TestSchedulesAreListedAPageAtATime(t *testing.T) {
	a := newTestAPI(t)
	a.deployed("default", "f")
	a.deployed("default", "g")
	for i := range 5 {
		fn := "f"
		if i%2 == 1 {
			fn = "g"
		}
		a.must(201, req{method: "PUT", path: fmt.Sprintf("/v1/schedules/s%d", i), key: a.admin, body: `{"function": "` + fn + `", "expression": "@every 1h"}`})
	}
	type page struct {
		Schedules []struct {
			Name     string `json:"name"`
			NextFire string `json:"next_fire"`
		} `json:"schedules"`
		Next *string `json:"next"`
	}
	get := func(path string) (string, *string) {
		t.Helper()
		var p page
		if err := json.Unmarshal(a.must(200, req{method: "GET", path: path, key: a.admin}).Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range p.Schedules {
			if s.NextFire == "" {
				t.Fatalf("%s: schedule %s without its next fire", path, s.Name)
			}
			names = append(names, s.Name)
		}
		return fmt.Sprint(names), p.Next
	}
	if names, next := get("/v1/schedules"); names != "[s0 s1 s2 s3 s4]" || next != nil {
		t.Fatalf("without a limit: %s next %v", names, next)
	}
	if names, next := get("/v1/schedules?limit=2&after=s1"); names != "[s2 s3]" || next == nil || *next != "s3" {
		t.Fatalf("a page after s1: %s next %v", names, next)
	}
	if names, next := get("/v1/schedules?function=f&limit=2&after=s0"); names != "[s2 s4]" || next != nil {
		t.Fatalf("f's after s0: %s next %v", names, next)
	}
	a.must(400, req{method: "GET", path: "/v1/schedules?limit=10001", key: a.admin})
}
