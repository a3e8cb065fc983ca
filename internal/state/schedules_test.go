package state

import (
	"fmt"
	"testing"
)

// The change log answers with every name changed since a count it still
// knows, and says when it no longer knows them all.
func TestTheScheduleChangeLogKnowsItsRecentChanges(t *testing.T) {
	var l changeLog
	for i := range 3*changeLogKeep + 7 {
		l.add(fmt.Sprint("s", i))
	}
	if _, _, ok := l.since(0); ok {
		t.Fatal("the first change is still known after three times what the log keeps")
	}
	names, next, ok := l.since(l.count - 3)
	if !ok || next != l.count || fmt.Sprint(names) != fmt.Sprintf("[s%d s%d s%d]", l.count-3, l.count-2, l.count-1) {
		t.Fatalf("the last three: %v %d %v", names, next, ok)
	}
	if names, _, ok := l.since(l.count - changeLogKeep); !ok || len(names) != changeLogKeep {
		t.Fatalf("the last %d changes: %d, known %v", changeLogKeep, len(names), ok)
	}
	if _, _, ok := l.since(l.count + 1); ok {
		t.Fatal("a count from the future is answered")
	}
	before := l.count
	l.forget()
	if _, _, ok := l.since(before); ok {
		t.Fatal("changes from before a forget are answered")
	}
	l.add("after")
	if names, _, ok := l.since(before + 1); !ok || fmt.Sprint(names) != "[after]" {
		t.Fatalf("after the forget: %v %v", names, ok)
	}
}
