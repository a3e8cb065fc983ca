package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestABadTestEventIsRefusedWithASentenceAndTheSavedOnesStay(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Deps{})
	stored(t, s, "default", "f")
	saved, err := s.PutTestEvent(ctx, "default", "f", "order-1", []byte(`{"id":1}`), "user:ada")
	if err != nil || saved.UpdatedBy != "user:ada" || saved.UpdatedAt.IsZero() || saved.Namespace != "default" {
		t.Fatalf("a good test event: %+v, %v", saved, err)
	}
	big := `{"x":"` + strings.Repeat("a", model.MaxTestEventBytes) + `"}`
	cases := []struct {
		name, function, event string
		kind                  error
		says                  string
	}{
		{"a name with a space", "f", `{}`, state.ErrInvalid, "letters, digits"},
		{"", "f", `{}`, state.ErrInvalid, "letters, digits"},
		{"a-name-of-twenty-six-chars", "f", `{}`, state.ErrInvalid, "1 to 25"},
		{"not-json", "f", `{"a":`, state.ErrInvalid, "not valid JSON"},
		{"too-big", "f", big, state.ErrInvalid, "at most 256 KB"},
		{"fine", "nope", `{}`, state.ErrNotFound, "nope"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q of %s", c.name, c.function), func(t *testing.T) {
			_, err := s.PutTestEvent(ctx, "default", c.function, c.name, []byte(c.event), "k")
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.kind, c.says)
			}
		})
	}
	if got := s.TestEvents("default", "f"); len(got) != 1 || string(got[0].Event) != `{"id":1}` {
		t.Fatalf("after the refusals: %+v", got)
	}
}

func TestAFunctionKeepsTenTestEventsAndAnUpdateAtTheLimitIsAllowed(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Deps{})
	stored(t, s, "default", "f")
	for i := range model.MaxTestEvents {
		if _, err := s.PutTestEvent(ctx, "default", "f", fmt.Sprintf("e%d", i), []byte(`{}`), "k"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.PutTestEvent(ctx, "default", "f", "eleventh", []byte(`{}`), "k")
	if !errors.Is(err, state.ErrConflict) || !strings.Contains(err.Error(), "10 saved test events") {
		t.Fatalf("an eleventh: %v", err)
	}
	if _, err := s.PutTestEvent(ctx, "default", "f", "e4", []byte(`[1]`), "user:bo"); err != nil {
		t.Fatalf("an update at the limit: %v", err)
	}
	if e, err := s.TestEvent("default", "f", "e4"); err != nil || string(e.Event) != `[1]` || e.UpdatedBy != "user:bo" {
		t.Fatalf("updated: %+v %v", e, err)
	}
	if err := s.DeleteTestEvent(ctx, "default", "f", "e4"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTestEvent(ctx, "default", "f", "e4"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted twice: %v", err)
	}
	if _, err := s.PutTestEvent(ctx, "default", "f", "eleventh", []byte(`{}`), "k"); err != nil {
		t.Fatalf("after a removal there is room: %v", err)
	}
}
