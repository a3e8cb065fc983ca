package state

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"nimbus/internal/model"
)

func TestBuildsKeepTheNewestPerNamespaceAndTheirLayers(t *testing.T) {
	s := New()
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	layer := &model.DepLayer{SHA256: "ab", CacheKey: "k1", Packages: []string{"x==1"}}
	if err := s.RecordBuild(model.Build{ID: "first", Function: "f", Status: model.BuildSucceeded, Layer: layer, StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordBuild(model.Build{ID: "first", Function: "f", Status: model.BuildFailed}); !errors.Is(err, ErrConflict) {
		t.Errorf("the same ID again: %v, want ErrConflict", err)
	}
	if err := s.RecordBuild(model.Build{ID: "nolayer", Function: "f", Status: model.BuildSucceeded}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a succeeded build without its layer: %v, want ErrInvalid", err)
	}
	for i := range model.MaxBuilds {
		if err := s.RecordBuild(model.Build{ID: fmt.Sprint("b", i), Function: "g", Status: model.BuildFailed, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordBuild(model.Build{ID: "elsewhere", Namespace: "team", Function: "f", Status: model.BuildFailed}); err != nil {
		t.Fatal(err)
	}
	all := s.Builds("", "")
	if len(all) != model.MaxBuilds || all[0].ID != fmt.Sprint("b", model.MaxBuilds-1) {
		t.Fatalf("%d builds, newest %q: want the newest %d", len(all), all[0].ID, model.MaxBuilds)
	}
	if got := s.Builds("", "f"); len(got) != 0 {
		t.Errorf("f's build should have gone with the oldest: %+v", got)
	}
	if got := s.Builds("team", ""); len(got) != 1 || got[0].ID != "elsewhere" {
		t.Errorf("team's builds: %+v", got)
	}
	// The layer outlives the build that made it: later builds reuse it.
	if l, ok := s.DepLayer("k1"); !ok || l.SHA256 != "ab" {
		t.Errorf("DepLayer(k1) = %+v, %v", l, ok)
	}

	back := restored(t, s)
	if got := back.Builds("", ""); len(got) != model.MaxBuilds || got[0].ID != all[0].ID {
		t.Errorf("restored builds: %d, newest %q", len(got), got[0].ID)
	}
	if _, err := back.Build("team", "elsewhere"); err != nil {
		t.Errorf("restored team build: %v", err)
	}
	if _, ok := back.DepLayer("k1"); !ok {
		t.Error("the restored store lost the layer")
	}
	if _, err := back.Build("", "nowhere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown build: %v", err)
	}
}
