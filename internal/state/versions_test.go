package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"nimbus/internal/model"
)

func deployed(t *testing.T, s *Store, name, sha string) model.Function {
	t.Helper()
	f, _, err := s.UpsertFunction(model.Function{FunctionConfig: model.FunctionConfig{Name: name, Handler: "main.handler", MemoryMB: 128, Description: "head"}, CodeSHA256: sha}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAPublishedVersionKeepsItsRevisionWhileTheHeadMovesOn(t *testing.T) {
	s := New()
	deployed(t, s, "f", "aa")
	v1, created, err := s.PublishVersion("", "f", "first", t0)
	if err != nil || !created || v1.Version != 1 || v1.Revision != 1 || v1.Description != "first" {
		t.Fatalf("publish: %+v created %v err %v", v1, created, err)
	}
	again, created, err := s.PublishVersion("", "f", "", t0)
	if err != nil || created || again.Version != 1 {
		t.Fatalf("publishing an unchanged head made %+v (created %v, %v); want version 1 back", again, created, err)
	}
	deployed(t, s, "f", "bb")
	v2, _, _ := s.PublishVersion("", "f", "", t0)
	if v2.Version != 2 || v2.CodeSHA256 != "bb" || v2.Description != "head" {
		t.Fatalf("second version %+v", v2)
	}
	deployed(t, s, "f", "cc")
	for ref, want := range map[string]string{"default/f": "cc", "default/f:$LATEST": "cc", "default/f:1": "aa", "default/f:2": "bb"} {
		got, err := s.Resolve(ref, 0.5)
		if err != nil || got.CodeSHA256 != want {
			t.Errorf("%s resolves to code %q (%v); want %q", ref, got.CodeSHA256, err, want)
		}
	}
	for ref, kind := range map[string]error{"default/f:3": ErrNotFound, "default/f:nope": ErrNotFound, "default/g:1": ErrNotFound, "default/f:a.b": ErrInvalid, "default/f:0": ErrInvalid} {
		if _, err := s.Resolve(ref, 0); !errors.Is(err, kind) {
			t.Errorf("%s: %v; want %v", ref, err, kind)
		}
	}
}

func TestAnAliasRoutesItsWeightToTheSecondVersion(t *testing.T) {
	s := New()
	deployed(t, s, "f", "aa")
	s.PublishVersion("", "f", "", t0)
	deployed(t, s, "f", "bb")
	s.PublishVersion("", "f", "", t0)
	a := model.Alias{Function: "f", Name: "live", Version: 1, Routing: &model.AliasRouting{Version: 2, Weight: 0.25}}
	if _, err := s.PutAlias(a, true, t0); err != nil {
		t.Fatal(err)
	}
	for r, want := range map[float64]int64{0: 2, 0.2499: 2, 0.25: 1, 0.99: 1} {
		got, err := s.Resolve("default/f:live", r)
		if err != nil || got.Version != want {
			t.Errorf("r=%v: version %d (%v); want %d", r, got.Version, err, want)
		}
	}
	bad := []struct {
		name  string
		alias model.Alias
		kind  error
	}{
		{"a weight of 1", model.Alias{Function: "f", Name: "x", Version: 1, Routing: &model.AliasRouting{Version: 2, Weight: 1}}, ErrInvalid},
		{"a negative weight", model.Alias{Function: "f", Name: "x", Version: 1, Routing: &model.AliasRouting{Version: 2, Weight: -0.1}}, ErrInvalid},
		{"routing to itself", model.Alias{Function: "f", Name: "x", Version: 1, Routing: &model.AliasRouting{Version: 1, Weight: 0.5}}, ErrInvalid},
		{"routing with $LATEST", model.Alias{Function: "f", Name: "x", Routing: &model.AliasRouting{Version: 1, Weight: 0.5}}, ErrInvalid},
		{"routing to a missing version", model.Alias{Function: "f", Name: "x", Version: 1, Routing: &model.AliasRouting{Version: 7, Weight: 0.5}}, ErrInvalid},
		{"a numeric name", model.Alias{Function: "f", Name: "12", Version: 1}, ErrInvalid},
		{"an unknown function", model.Alias{Function: "g", Name: "x", Version: 1}, ErrNotFound},
	}
	for _, c := range bad {
		if _, err := s.PutAlias(c.alias, true, t0); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v; want %v", c.name, err, c.kind)
		}
	}
	if err := s.DeleteVersion("", "f", 2); !errors.Is(err, ErrConflict) {
		t.Fatalf("removing a version an alias routes to: %v", err)
	}
	if aliases, _ := s.Aliases("", "f"); len(aliases) != 1 || aliases[0].Routing.Weight != 0.25 {
		t.Fatalf("a refused change changed the aliases: %+v", aliases)
	}
}

func TestVersionsAndAliasesSurviveASnapshotAndGoWithTheirFunction(t *testing.T) {
	s := New()
	deployed(t, s, "f", "aa")
	s.PublishVersion("", "f", "", t0)
	s.PutAlias(model.Alias{Function: "f", Name: "live", Version: 1}, true, t0.Add(time.Minute))
	r := New()
	if err := r.Restore(captureReader(t, s)); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve("default/f:live", 0); err != nil || got.Version != 1 {
		t.Fatalf("after a restore f:live is %+v (%v)", got, err)
	}
	if _, _, err := r.RemoveFunction("default/f", false); err != nil {
		t.Fatal(err)
	}
	deployed(t, r, "f", "bb")
	if _, err := r.Resolve("default/f:live", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an alias outlived its function: %v", err)
	}
	if v, _, _ := r.PublishVersion("", "f", "", t0); v.Version != 1 {
		t.Fatalf("a function made again numbers its versions from %d", v.Version)
	}
}

// captureReader is s's snapshot as a server writes it.
func captureReader(t *testing.T, s *Store) io.Reader {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.Capture().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return &b
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestTagsChangeWithoutARevisionAndADeployKeepsThem(t *testing.T) {
	s := New()
	deployed(t, s, "f", "aa")
	if err := s.TagFunction("", "f", map[string]string{"team": "orders", "cost": "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.TagFunction("", "f", map[string]string{"team": "billing"}, []string{"cost"}); err != nil {
		t.Fatal(err)
	}
	f, _ := s.Function("default/f")
	if f.Revision != 1 || len(f.Tags) != 1 || f.Tags["team"] != "billing" {
		t.Fatalf("after tagging: revision %d, tags %v", f.Revision, f.Tags)
	}
	deployed(t, s, "f", "bb")
	if f, _ = s.Function("default/f"); f.Tags["team"] != "billing" {
		t.Fatalf("a deploy dropped the tags: %v", f.Tags)
	}
	many := map[string]string{}
	for i := range 51 {
		many[fmt.Sprint("k", i)] = "v"
	}
	for name, set := range map[string]map[string]string{"too many": many, "reserved": {"AWS:x": "y"}, "empty key": {"": "y"}} {
		if err := s.TagFunction("", "f", set, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if f, _ = s.Function("default/f"); len(f.Tags) != 1 {
		t.Errorf("a refused change changed the tags: %v", f.Tags)
	}
}
