package service

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nimbus/internal/backup"
	"nimbus/internal/state"
)

// Snapshotter is what backups need of the Raft node.
type Snapshotter interface {
	ID() string
	IsLeader() bool
	LeaderID() string
	// ConsistentRead waits until this server has applied every write
	// committed before the call.
	ConsistentRead(ctx context.Context) error
	// Snapshot takes (or opens the latest) Raft snapshot of the state.
	Snapshot() (index, term uint64, size int64, contents io.ReadCloser, err error)
	// Restore installs contents as the cluster's state (leader only).
	Restore(contents []byte, timeout time.Duration) error
}

// ErrBackupsOff is a backup asked of a server built without a Raft node
// to take it from.
var ErrBackupsOff = errors.New("this server cannot take or restore snapshots")

// NotLeaderError is a restore asked of a server that is not the leader:
// Leader is the leader's server ID ("" when there is none).
type NotLeaderError struct{ Leader string }

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "there is no leader to restore the snapshot: retry when the cluster has one"
	}
	return "only the leader restores a snapshot: send it to server " + e.Leader
}

// restoreTimeout bounds how long the leader may take to install a
// restored snapshot.
const restoreTimeout = 5 * time.Minute

// SaveBackup writes a backup of the cluster to w (see internal/backup):
// a snapshot of the state holding every write committed before the call,
// and every blob it names, read here or fetched from the servers that
// hold them. progress, when set, is told the bytes written so far.
func (s *Service) SaveBackup(ctx context.Context, w io.Writer, progress func(done int64)) (backup.Meta, error) {
	sn := s.d.Snapshots
	if sn == nil {
		return backup.Meta{}, ErrBackupsOff
	}
	if err := sn.ConsistentRead(ctx); err != nil {
		return backup.Meta{}, err
	}
	index, term, size, rc, err := sn.Snapshot()
	if err != nil {
		return backup.Meta{}, fmt.Errorf("taking a snapshot: %w", err)
	}
	defer rc.Close()
	// The snapshot streams into the backup and, through a pipe, into a
	// reader that counts its objects and lists the blobs they name: a
	// snapshot of a million records is never held, nor are its records.
	pr, pw := io.Pipe()
	type summary struct {
		counts map[string]int
		blobs  []string
		err    error
	}
	read := make(chan summary, 1)
	go func() {
		counts, blobs, err := state.SummarizeSnapshot(pr)
		if err != nil {
			pr.CloseWithError(err) // the backup's copy stops with it
		} else {
			io.Copy(io.Discard, pr) // what follows its JSON, to the end
		}
		read <- summary{counts, blobs, err}
	}()
	defer pw.CloseWithError(errors.New("the backup stopped"))
	contents := func() ([]string, map[string]int, error) {
		pw.Close()
		r := <-read
		if r.err != nil {
			return nil, nil, fmt.Errorf("reading the snapshot: %w", r.err)
		}
		return r.blobs, r.counts, nil
	}
	m := backup.Meta{CreatedAt: time.Now().UTC(), Server: sn.ID(), Index: index, Term: term}
	m, err = backup.Write(w, m, io.TeeReader(rc, pw), size, contents, func(digest string) ([]byte, error) { return s.blob(ctx, digest) }, progress)
	if err != nil {
		return m, err
	}
	s.log.Info("backup saved", "index", m.Index, "term", m.Term, "blobs", len(m.Blobs), "bytes", m.Size())
	return m, nil
}

// blob reads a blob here, or from the servers that hold it.
func (s *Service) blob(ctx context.Context, digest string) ([]byte, error) {
	b, err := s.d.Blobs.Get(ctx, digest)
	if err == nil || s.d.FetchBlob == nil {
		return b, err
	}
	return s.d.FetchBlob(ctx, digest)
}

// RestoreBackup replaces the cluster's state with a backup read from r,
// on the leader (NotLeaderError elsewhere). The whole backup is checked
// before anything changes: every blob against its digest, the state
// against its checksum, and every blob the state names present. The
// blobs are stored here and replicated like code, then the state is
// installed: what was written since the backup was taken is gone. The
// servers recorded are the cluster's own, not the backup's (a backup
// restores into another cluster).
func (s *Service) RestoreBackup(ctx context.Context, r io.Reader) (backup.Meta, error) {
	sn := s.d.Snapshots
	if sn == nil {
		return backup.Meta{}, ErrBackupsOff
	}
	if !sn.IsLeader() {
		return backup.Meta{}, &NotLeaderError{Leader: sn.LeaderID()}
	}
	var stored []string
	m, contents, err := backup.Read(r, func(digest string, data []byte) error {
		if _, err := s.d.Blobs.Put(data); err != nil {
			return fmt.Errorf("storing blob %s: %w", digest, err)
		}
		stored = append(stored, digest)
		return nil
	})
	if err != nil {
		return m, state.Errorf(state.ErrInvalid, "%v", err)
	}
	snap, err := state.ReadSnapshot(bytes.NewReader(contents))
	if err != nil {
		return m, state.Errorf(state.ErrInvalid, "the backup's state does not decode: %v", err)
	}
	for _, d := range snap.Blobs() {
		if !slices.Contains(stored, d) && !s.d.Blobs.Has(d) {
			return m, state.Errorf(state.ErrInvalid, "the backup's state names blob %s, which it does not hold", d)
		}
	}
	for _, d := range snap.Blobs() {
		if s.d.ReplicateBlob == nil {
			break
		}
		b, err := s.d.Blobs.Get(ctx, d)
		if err != nil {
			return m, err
		}
		if err := s.d.ReplicateBlob(ctx, b); err != nil {
			return m, fmt.Errorf("replicating blob %s: %w", d, err)
		}
	}
	servers := s.store.ServerInfos()
	snap.Servers = snap.Servers[:0]
	for i := range servers {
		snap.Servers = append(snap.Servers, &servers[i])
	}
	var out bytes.Buffer
	if _, err := snap.WriteTo(&out); err != nil {
		return m, err
	}
	if err := sn.Restore(out.Bytes(), restoreTimeout); err != nil {
		return m, fmt.Errorf("installing the backup: %w", err)
	}
	s.log.Warn("backup restored: the cluster's state is the backup's", "index", m.Index, "term", m.Term, "taken_on", m.Server, "taken_at", m.CreatedAt)
	return m, nil
}

// BackupSchedule says when the leader saves backups: every Every (0:
// never) into Dir, keeping the newest Keep (at least one).
type BackupSchedule struct {
	Every time.Duration
	Dir   string
	Keep  int
}

// backupPrefix and backupSuffix frame the names of scheduled backups:
// nimbus-20261207T041500Z.snap, which sort by time.
const (
	backupPrefix = "nimbus-"
	backupSuffix = ".snap"
	backupStamp  = "20060102T150405Z"
)

// SaveBackupFile saves a backup into dir under a name that says when
// (written to a temporary file, read back and checked, then renamed),
// then removes the oldest scheduled backups beyond keep. It returns the
// file's path.
func (s *Service) SaveBackupFile(ctx context.Context, dir string, keep int) (string, backup.Meta, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", backup.Meta{}, err
	}
	tmp, err := os.CreateTemp(dir, ".partial-*")
	if err != nil {
		return "", backup.Meta{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	m, err := s.SaveBackup(ctx, tmp, nil)
	if err != nil {
		return "", m, err
	}
	if err := tmp.Sync(); err != nil {
		return "", m, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", m, err
	}
	if _, _, err := backup.Read(bufio.NewReader(tmp), nil); err != nil {
		return "", m, fmt.Errorf("the backup written does not read back: %w", err)
	}
	path := filepath.Join(dir, backupPrefix+m.CreatedAt.Format(backupStamp)+backupSuffix)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", m, err
	}
	old := scheduledBackups(dir)
	for len(old) > max(keep, 1) {
		os.Remove(filepath.Join(dir, old[0]))
		old = old[1:]
	}
	return path, m, nil
}

// scheduledBackups lists the scheduled backups in dir, oldest first.
func scheduledBackups(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		name := e.Name()
		if stamp, ok := strings.CutSuffix(strings.TrimPrefix(name, backupPrefix), backupSuffix); ok && strings.HasPrefix(name, backupPrefix) {
			if _, err := time.Parse(backupStamp, stamp); err == nil {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// RunBackups saves a backup into b.Dir whenever the newest there is
// b.Every old (at once if there is none), until ctx ends: the leader
// runs it in each term, and a new leader takes up the schedule where the
// backups on its disk leave it.
func (s *Service) RunBackups(ctx context.Context, b BackupSchedule) {
	if b.Every <= 0 {
		return
	}
	for {
		next := time.Now()
		if list := scheduledBackups(b.Dir); len(list) > 0 {
			stamp := strings.TrimSuffix(strings.TrimPrefix(list[len(list)-1], backupPrefix), backupSuffix)
			if last, err := time.Parse(backupStamp, stamp); err == nil {
				next = last.Add(b.Every)
			}
		}
		wait := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		path, m, err := s.SaveBackupFile(ctx, b.Dir, b.Keep)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("scheduled backup failed; trying again in a minute", "dir", b.Dir, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
			continue
		}
		s.log.Info("scheduled backup saved", "path", path, "index", m.Index, "bytes", m.Size())
	}
}
