package codepkg

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// zipModTime is the modification time stamped on every entry ZipDir writes,
// so that the same tree always gives the same bytes.
var zipModTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// skipped reports whether ZipDir leaves out the entry with this base name.
func skipped(name string, isDir bool) bool {
	if isDir {
		return name == "__pycache__" || name == ".git" || name == ".nimbus"
	}
	return strings.HasSuffix(name, ".pyc")
}

// localEntry is one thing ZipDir will store.
type localEntry struct {
	rel    string // slash path relative to the directory
	abs    string
	kind   entryKind
	size   int64
	exec   bool
	target string // symlinks
}

// ZipDir zips the tree under dir for upload. The result is deterministic:
// entries are sorted by path and carry a fixed time and normalised modes
// (files 0644 or 0755, directories 0755), so the same tree gives the same
// bytes and SHA-256. It leaves out __pycache__, .git and .nimbus
// directories and *.pyc files. Symlinks are stored as symlinks when they
// resolve inside dir; a symlink leading out of dir, and devices, fifos and
// sockets, fail with ErrInvalidPackage. Past lim (entries, unzipped bytes,
// or zip bytes while writing) it stops with ErrTooLarge.
//
// progress, if not nil, is called from the calling goroutine with the
// bytes of file contents read so far and their total, after each file and
// at most every 1 MiB within one.
//
// The result is checked with Validate before it is returned, so it is
// never refused by a server with the same limits.
func ZipDir(dir string, lim Limits, progress func(done, total int64)) ([]byte, error) {
	entries, total, err := scanDir(dir, lim)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	out := &cappedWriter{w: &buf, max: lim.MaxZip}
	zw := zip.NewWriter(out)
	var done int64
	report := func() {
		if progress != nil {
			progress(done, total)
		}
	}
	if progress != nil {
		progress(0, total)
	}
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.rel, Modified: zipModTime}
		switch e.kind {
		case kindDir:
			h.Name += "/"
			h.SetMode(fs.ModeDir | 0o755)
		case kindSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
		case kindFile:
			h.Method = zip.Deflate
			h.SetMode(0o644)
			if e.exec {
				h.SetMode(0o755)
			}
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, zipErr(err, lim)
		}
		switch e.kind {
		case kindSymlink:
			if _, err := io.WriteString(w, e.target); err != nil {
				return nil, zipErr(err, lim)
			}
		case kindFile:
			if err := copyFile(w, e, &done, report); err != nil {
				return nil, zipErr(err, lim)
			}
			report()
		}
	}
	if err := zw.Close(); err != nil {
		return nil, zipErr(err, lim)
	}
	b := buf.Bytes()
	if _, err := Validate(b, lim); err != nil {
		return nil, err
	}
	return b, nil
}

func zipErr(err error, lim Limits) error {
	if errors.Is(err, errZipFull) {
		return fmt.Errorf("%w: zip passes the limit of %d bytes", ErrTooLarge, lim.MaxZip)
	}
	return fmt.Errorf("zip: %w", err)
}

// copyFile copies e's contents into w, adding to *done; it fails if the
// file changed size since it was scanned.
func copyFile(w io.Writer, e localEntry, done *int64, report func()) error {
	f, err := os.Open(e.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	for {
		m, err := io.CopyN(w, f, 1<<20)
		n += m
		*done += m
		if n > e.size {
			return fmt.Errorf("%s changed while being zipped", e.abs)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		report()
	}
	if n != e.size {
		return fmt.Errorf("%s changed while being zipped", e.abs)
	}
	return nil
}

var errZipFull = errors.New("zip limit reached")

// cappedWriter fails with errZipFull once more than max bytes (max > 0)
// would have been written.
type cappedWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.max > 0 && c.n+int64(len(p)) > c.max {
		return 0, errZipFull
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// scanDir lists what ZipDir will store, sorted by path, and the total size
// of the files, checking limits and symlinks on the way.
func scanDir(dir string, lim Limits) ([]localEntry, int64, error) {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("zip: %w", err)
	}
	var (
		entries []localEntry
		total   int64
	)
	err = filepath.WalkDir(realDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == realDir {
			return nil
		}
		if skipped(d.Name(), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(realDir, p)
		if err != nil {
			return err
		}
		e := localEntry{rel: filepath.ToSlash(rel), abs: p}
		if _, err := cleanName(e.rel); err != nil || strings.Contains(rel, `\`) {
			return fmt.Errorf("%w: %s: cannot be stored in a package: %v", ErrInvalidPackage, rel, err)
		}
		switch t := d.Type(); {
		case t.IsDir():
			e.kind = kindDir
		case t&fs.ModeSymlink != 0:
			e.kind = kindSymlink
			if e.target, err = localLinkTarget(realDir, p); err != nil {
				return err
			}
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e.kind, e.size, e.exec = kindFile, fi.Size(), fi.Mode().Perm()&0o111 != 0
			total += e.size
		default:
			return fmt.Errorf("%w: %s is a %v, not a regular file, directory or symlink", ErrInvalidPackage, rel, t)
		}
		entries = append(entries, e)
		if lim.MaxFiles > 0 && len(entries) > lim.MaxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, lim.MaxFiles)
		}
		if lim.MaxUnzipped > 0 && total > lim.MaxUnzipped {
			return fmt.Errorf("%w: files pass the unzipped limit of %d bytes at %s", ErrTooLarge, lim.MaxUnzipped, rel)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrInvalidPackage) || errors.Is(err, ErrTooLarge) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("zip: %w", err)
	}
	slices.SortFunc(entries, func(a, b localEntry) int { return strings.Compare(a.rel, b.rel) })
	return entries, total, nil
}

// localLinkTarget returns the target of the symlink p under root, refusing
// absolute targets and targets that lead outside root. Links that resolve
// nowhere are checked lexically, and Validate checks the stored tree again.
func localLinkTarget(root, p string) (string, error) {
	rel, _ := filepath.Rel(root, p)
	t, err := os.Readlink(p)
	if err != nil {
		return "", err
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: symlink %s -> %s %s", ErrInvalidPackage, rel, t, why)
	}
	if filepath.IsAbs(t) {
		return "", bad("is absolute; make it relative to stay inside the package")
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		resolved = filepath.Join(filepath.Dir(p), t) // dangling: lexical check
	}
	if r, err := filepath.Rel(root, resolved); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", bad("leads outside the package directory")
	}
	return filepath.ToSlash(t), nil
}
