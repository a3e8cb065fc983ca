// Package backup owns the format of a cluster backup: one file that
// holds a Raft snapshot of the state and every blob (code packages,
// layers, dependency layers) its objects name, each checksummed, so that
// a backup restores into a fresh cluster with nothing else.
//
// A backup is a gzip-compressed tar archive of, in this order:
//
//	state.snap            the FSM snapshot, as Raft persists it
//	blobs/<sha256>        each blob, named by the hex SHA-256 of its bytes
//	nimbus-backup.json    Meta: index, term, counts, and every entry's
//	                      SHA-256 and size
//
// Meta comes last so that a backup streams out as it is made; Read
// checks every entry as it passes and the whole against Meta at the end,
// and reports a backup that is cut short or altered as ErrCorrupt.
package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Format is the version of the backups Write writes; Read reads it and
// every earlier one.
const Format = 1

const (
	metaName  = "nimbus-backup.json"
	stateName = "state.snap"
	blobDir   = "blobs/"
	// maxEntry bounds one entry's size: a state or a blob beyond it is
	// not read into memory.
	maxEntry = 8 << 30
)

// ErrCorrupt is a backup that is cut short, altered, or not a backup.
var ErrCorrupt = errors.New("the backup is corrupt")

// Meta describes a backup.
type Meta struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Server is the server the backup was made on; Index and Term the
	// Raft log position of its snapshot.
	Server string `json:"server,omitempty"`
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	// Counts are the state's objects by kind (state.Snapshot.Counts).
	Counts map[string]int `json:"counts,omitempty"`
	State  Entry          `json:"state"`
	Blobs  []Entry        `json:"blobs,omitempty"`
}

// Entry is one checksummed entry of a backup.
type Entry struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Size is the bytes of the state and blobs together (uncompressed).
func (m Meta) Size() int64 {
	n := m.State.Size
	for _, b := range m.Blobs {
		n += b.Size
	}
	return n
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Write writes a backup to w: the state, size bytes read from state
// (streamed, never held whole), then the blobs it names, read through
// blob, then Meta. contents is called once the state is written, and
// gives the digests of the blobs the state names and its objects' counts
// (a caller that reads the state as it streams out knows them only
// then). progress, when set, is called as the bytes written grow. It
// returns m with State, Counts and Blobs filled in. A blob that cannot
// be read, or whose bytes do not match its digest, fails the backup: a
// backup without it could not be restored.
func Write(w io.Writer, m Meta, state io.Reader, size int64, contents func() (digests []string, counts map[string]int, err error),
	blob func(digest string) ([]byte, error), progress func(done int64)) (Meta, error) {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	out := &progressWriter{w: tw, progress: progress}
	put := func(name string, r io.Reader, size int64) (string, error) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, h), r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: %d bytes where %d were announced", name, n, size)
		}
		if err != nil {
			return "", err
		}
		out.report()
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	m.Format = Format
	sum, err := put(stateName, io.LimitReader(state, size+1), size)
	if err != nil {
		return m, fmt.Errorf("the state: %w", err)
	}
	m.State = Entry{SHA256: sum, Size: size}
	digests, counts, err := contents()
	if err != nil {
		return m, err
	}
	m.Counts, m.Blobs = counts, nil
	for _, d := range digests {
		b, err := blob(d)
		if err != nil {
			return m, fmt.Errorf("blob %s: %w", d, err)
		}
		if digest(b) != d {
			return m, fmt.Errorf("blob %s: its bytes do not match its digest", d)
		}
		if _, err := put(blobDir+d, bytes.NewReader(b), int64(len(b))); err != nil {
			return m, err
		}
		m.Blobs = append(m.Blobs, Entry{SHA256: d, Size: int64(len(b))})
	}
	meta, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if _, err := put(metaName, bytes.NewReader(meta), int64(len(meta))); err != nil {
		return m, err
	}
	if err := tw.Close(); err != nil {
		return m, err
	}
	return m, gz.Close()
}

// progressWriter counts what passes and tells progress every
// progressEvery bytes, and at the end of each entry (report).
type progressWriter struct {
	w              io.Writer
	progress       func(done int64)
	done, reported int64
}

const progressEvery = 4 << 20

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if p.done += int64(n); p.done-p.reported >= progressEvery {
		p.report()
	}
	return n, err
}

func (p *progressWriter) report() {
	if p.progress != nil && p.done != p.reported {
		p.progress(p.done)
	}
	p.reported = p.done
}

// Read reads a backup from r and checks it: every blob against its name,
// the state and the blobs against Meta, nothing missing or extra. blob,
// when set, is given each blob once its bytes are checked against its
// name (before the whole backup is: a caller that stores them keeps
// content-addressed bytes that are right, whatever comes next). It
// returns Meta and the state.
func Read(r io.Reader, blob func(digest string, data []byte) error) (Meta, []byte, error) {
	var m Meta
	gz, err := gzip.NewReader(r)
	if err != nil {
		return m, nil, fmt.Errorf("%w: not a gzip stream (%v)", ErrCorrupt, err)
	}
	tr := tar.NewReader(gz)
	var (
		state    []byte
		gotState bool
		gotMeta  bool
		blobs    = map[string]int64{}
	)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if gotMeta {
			return m, nil, fmt.Errorf("%w: %s follows the backup's description, which ends it", ErrCorrupt, h.Name)
		}
		if h.Typeflag != tar.TypeReg || h.Size < 0 || h.Size > maxEntry {
			return m, nil, fmt.Errorf("%w: entry %s is not a file of at most %d bytes", ErrCorrupt, h.Name, int64(maxEntry))
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return m, nil, fmt.Errorf("%w: reading %s: %v", ErrCorrupt, h.Name, err)
		}
		switch name := h.Name; {
		case name == stateName && !gotState:
			state, gotState = b, true
		case strings.HasPrefix(name, blobDir):
			d := strings.TrimPrefix(name, blobDir)
			if digest(b) != d {
				return m, nil, fmt.Errorf("%w: blob %s does not match its digest", ErrCorrupt, d)
			}
			if _, dup := blobs[d]; dup {
				return m, nil, fmt.Errorf("%w: blob %s is in it twice", ErrCorrupt, d)
			}
			blobs[d] = int64(len(b))
			if blob != nil {
				if err := blob(d, b); err != nil {
					return m, nil, err
				}
			}
		case name == metaName:
			if err := json.Unmarshal(b, &m); err != nil {
				return m, nil, fmt.Errorf("%w: its description does not decode: %v", ErrCorrupt, err)
			}
			gotMeta = true
		default:
			return m, nil, fmt.Errorf("%w: unexpected entry %s", ErrCorrupt, name)
		}
	}
	switch {
	case !gotMeta:
		return m, nil, fmt.Errorf("%w: it ends before its description (cut short?)", ErrCorrupt)
	case m.Format < 1 || m.Format > Format:
		return m, nil, fmt.Errorf("%w: format %d is unknown to this release (it reads 1 to %d)", ErrCorrupt, m.Format, Format)
	case !gotState:
		return m, nil, fmt.Errorf("%w: it holds no state", ErrCorrupt)
	case digest(state) != m.State.SHA256 || int64(len(state)) != m.State.Size:
		return m, nil, fmt.Errorf("%w: the state does not match its checksum", ErrCorrupt)
	case len(blobs) != len(m.Blobs):
		return m, nil, fmt.Errorf("%w: it holds %d blobs, its description lists %d", ErrCorrupt, len(blobs), len(m.Blobs))
	}
	for _, e := range m.Blobs {
		if size, ok := blobs[e.SHA256]; !ok || size != e.Size {
			return m, nil, fmt.Errorf("%w: blob %s is missing or of the wrong size", ErrCorrupt, e.SHA256)
		}
	}
	return m, state, nil
}
