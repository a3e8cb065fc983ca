package gateway

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

func TestRequestIDsAreVersion7UUIDsInTimeOrder(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	var ids []string
	for range 1000 {
		id := newRequestID()
		if !uuid.MatchString(id) {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}

	// IDs of distinct moments sort as their times do, down to a quarter
	// of a microsecond; the time is the one the ID says.
	t0 := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	var ordered []string
	for i := range 2000 {
		ordered = append(ordered, requestIDAt(t0.Add(time.Duration(i)*250*time.Nanosecond)))
	}
	if !sort.StringsAreSorted(ordered) {
		t.Fatal("IDs 250 ns apart do not sort in time order")
	}
	if got, want := ordered[0][:13], "01a20959-a680"; got != want {
		t.Fatalf("ID of %v starts %s; want %s (48 bits of Unix milliseconds)", t0, got, want)
	}
}
