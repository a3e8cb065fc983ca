package datadir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

func TestClassifyHidesThePathCountsAndLogsOnce(t *testing.T) {
	var logs bytes.Buffer
	m := New(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	raw := fmt.Errorf("commit: %w", &fs.PathError{Op: "write", Path: "/var/lib/nimbus/raft/raft.db", Err: syscall.ENOSPC})
	for i := 0; i < 3; i++ {
		err := m.Classify(raw, "raft apply PutKey")
		if !errors.Is(err, ErrFull) || strings.Contains(err.Error(), "/var/lib") {
			t.Fatalf("Classify(%v) = %v, want ErrFull without the path", raw, err)
		}
	}
	if got := m.FullErrors(); got != 3 {
		t.Fatalf("FullErrors = %d, want 3", got)
	}
	if lines := strings.Count(logs.String(), "the data directory is full"); lines != 1 {
		t.Fatalf("%d log lines for 3 errors within a minute, want 1:\n%s", lines, logs.String())
	}
	if !strings.Contains(logs.String(), "/var/lib/nimbus/raft/raft.db") {
		t.Fatalf("the log line lacks the detail an operator needs:\n%s", logs.String())
	}
}

func TestClassifyLeavesOtherErrorsAlone(t *testing.T) {
	other := errors.New("some other failure")
	var m *Monitor // a nil monitor classifies too
	if got := m.Classify(other, "x"); got != other {
		t.Fatalf("Classify(other) = %v", got)
	}
	if got := m.Classify(syscall.EDQUOT, "x"); !errors.Is(got, ErrFull) {
		t.Fatalf("Classify(EDQUOT) = %v, want ErrFull", got)
	}
	if m.Classify(nil, "x") != nil || m.Check() != nil || m.FullErrors() != 0 {
		t.Fatal("a nil monitor reports trouble")
	}
}

func TestCheckWritesTheDirectory(t *testing.T) {
	m := New(t.TempDir(), slog.Default())
	if err := m.Check(); err != nil {
		t.Fatalf("Check of a writable directory: %v", err)
	}
	gone := New(t.TempDir()+"/missing", slog.Default())
	err := gone.Check()
	if !errors.Is(err, ErrUnwritable) || strings.Contains(err.Error(), "/") {
		t.Fatalf("Check of a missing directory = %v, want ErrUnwritable without a path", err)
	}
}
