// Package datadir owns the health of a node's data directory: whether it
// can be written now (a probe), and the writes that failed because the
// disk holding it is full, which it counts and logs at most once a
// minute, so that a full disk is told apart from a fault of the server
// and never shown to API clients with the host's paths.
package datadir

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrFull marks a write that failed because the disk of the data
// directory is full (ENOSPC, or EDQUOT for a quota). Its message names no
// path: it may reach API clients.
var ErrFull = errors.New("the data directory is full: the server cannot store this write; free disk space on the server (or grow its volume)")

// ErrUnwritable marks a data directory that the probe could not write
// for another reason than a full disk (a read-only file system, an I/O
// error).
var ErrUnwritable = errors.New("the data directory is not writable")

// LogEvery is the least time between two log lines about full-disk
// errors; the errors met in between are counted in the next line.
const LogEvery = time.Minute

// IsFull reports whether err comes from a full disk or an exhausted
// quota.
func IsFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, ErrFull)
}

// Monitor watches one data directory. Its methods are safe for
// concurrent use; a nil *Monitor classifies errors (without counting or
// logging them) and reports a writable directory.
type Monitor struct {
	dir string
	log *slog.Logger

	full atomic.Uint64 // full-disk errors met, ever

	mu       sync.Mutex
	lastLog  time.Time // when the last line about them was logged
	unlogged int       // errors met since that line
}

// New returns a Monitor of dir that logs to log.
func New(dir string, log *slog.Logger) *Monitor {
	return &Monitor{dir: dir, log: log}
}

// Classify returns ErrFull, wrapped with what failed, when err comes from
// a full disk, and err unchanged otherwise. A full-disk error is counted,
// and logged with its detail (which names host paths) at most once per
// LogEvery.
func (m *Monitor) Classify(err error, what string) error {
	if err == nil || !IsFull(err) {
		return err
	}
	if errors.Is(err, ErrFull) {
		return err // classified already (by the leader of a forwarded write)
	}
	if m != nil {
		m.report(err, what)
	}
	return &fullError{what: what}
}

func (m *Monitor) report(err error, what string) {
	m.full.Add(1)
	now := time.Now()
	m.mu.Lock()
	if !m.lastLog.IsZero() && now.Sub(m.lastLog) < LogEvery {
		m.unlogged++
		m.mu.Unlock()
		return
	}
	since := m.unlogged
	m.lastLog, m.unlogged = now, 0
	m.mu.Unlock()
	m.log.Error("the data directory is full: writes fail until disk space is freed",
		"dir", m.dir, "failed", what, "err", err, "more_since_last_line", since)
}

// fullError is ErrFull with what failed; it does not keep the original
// error, whose message names host paths.
type fullError struct{ what string }

func (e *fullError) Error() string { return e.what + ": " + ErrFull.Error() }
func (e *fullError) Is(target error) bool {
	return target == ErrFull
}

// FullErrors is the number of full-disk errors Classify has met.
func (m *Monitor) FullErrors() uint64 {
	if m == nil {
		return 0
	}
	return m.full.Load()
}

// probeSize is what the probe writes: a page, so that a full file system
// refuses it (an empty file needs only an inode).
const probeSize = 4096

// Check writes, syncs and removes a small file in the data directory. It
// returns nil when that works, an error wrapping ErrFull when the disk is
// full, and one wrapping ErrUnwritable otherwise. Its errors name no path.
func (m *Monitor) Check() error {
	if m == nil {
		return nil
	}
	f, err := os.CreateTemp(m.dir, ".probe-*")
	if err != nil {
		return m.probeErr(err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return m.probeErr(err)
}

func (m *Monitor) probeErr(err error) error {
	if err == nil {
		return nil
	}
	if IsFull(err) {
		return ErrFull
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the errno, without the path
	}
	return &unwritableError{cause: err}
}

type unwritableError struct{ cause error }

func (e *unwritableError) Error() string   { return ErrUnwritable.Error() + ": " + e.cause.Error() }
func (e *unwritableError) Is(t error) bool { return t == ErrUnwritable }
