package state

import (
	"errors"
	"testing"
	"time"

	"nimbus/internal/model"
)

func TestLayerVersionsAreNumberedOnceAndKeptWhileMounted(t *testing.T) {
	s := New()
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for i, sha := range []string{"a1", "a2", "a3"} {
		l, err := s.PublishLayer(model.Layer{Name: "lib", SHA256: sha, CreatedAt: t0})
		if err != nil || l.Version != int64(i+1) {
			t.Fatalf("publish %d: %+v %v", i, l, err)
		}
	}
	if _, err := s.PublishLayer(model.Layer{Namespace: "nowhere", Name: "lib", SHA256: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a layer of an unknown namespace: %v", err)
	}
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f", Layers: []string{"lib:2"}}, LayerRefs: []model.LayerRef{{Name: "lib", Version: 2, SHA256: "a2"}}}
	if _, _, err := s.UpsertFunction(fn, t0); err != nil {
		t.Fatal(err)
	}
	stale := fn
	stale.LayerRefs = []model.LayerRef{{Name: "lib", Version: 2, SHA256: "other"}}
	if _, _, err := s.UpsertFunction(stale, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("a function mounting a version with another digest: %v", err)
	}
	if err := s.DeleteLayer("", "lib", 2); !errors.Is(err, ErrConflict) {
		t.Errorf("removing a mounted version: %v, want ErrConflict", err)
	}
	if err := s.DeleteLayer("", "lib", 3); err != nil {
		t.Fatal(err)
	}
	// The removed number is not given again.
	if l, _ := s.PublishLayer(model.Layer{Name: "lib", SHA256: "a4"}); l.Version != 4 {
		t.Errorf("the version after a removed 3 is %d, want 4", l.Version)
	}
	if l, err := s.Layer("", "lib", 0); err != nil || l.Version != 4 {
		t.Errorf("the latest: %+v %v", l, err)
	}

	back := restored(t, s)
	var versions []int64
	for _, l := range back.Layers("", "lib") {
		versions = append(versions, l.Version)
	}
	if len(versions) != 3 || versions[0] != 1 || versions[2] != 4 {
		t.Errorf("restored versions %v, want 1 2 4", versions)
	}
	if l, _ := back.PublishLayer(model.Layer{Name: "lib", SHA256: "a5"}); l.Version != 5 {
		t.Errorf("after a restore the next version is %d, want 5", l.Version)
	}
}
