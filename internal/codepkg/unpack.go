package codepkg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// ErrDestExists is returned by Unpack when dest exists and is not an empty
// directory, including when a concurrent Unpack to the same dest won the
// race. Callers that key dest by the package's SHA-256 may treat it as
// "already unpacked".
var ErrDestExists = errors.New("unpack destination exists and is not empty")

// Modes of an unpacked tree: read-only for everyone.
const (
	modeFile = 0o444
	modeExec = 0o555 // files whose zip mode has any execute bit
	modeDir  = 0o555
)

// Unpack checks zipBytes as Validate does and writes its tree to dest, which
// must not exist or be an empty directory; its parent must exist.
//
// The tree is built in a temporary directory next to dest, through an
// os.Root, and renamed to dest once complete: dest is never seen half
// filled; an empty dest directory is replaced by the new tree. On error the
// temporary directory is removed and dest is left absent, or as the empty
// directory it was (barring a failure of the final rename itself). Bytes are counted as they are written, so
// a zip whose headers lie stops with ErrTooLarge or ErrInvalidPackage after
// at most lim.MaxUnzipped bytes.
//
// Regular files get mode 0444 (0555 if the zip marks them executable) and
// directories, dest included, 0555. Symlinks are recreated as is; Validate
// has proved that each resolves inside the package. Use RemoveTree to
// delete the result.
//
// Errors wrap ErrInvalidPackage, ErrTooLarge or ErrDestExists, or are I/O
// errors from the local file system.
func Unpack(zipBytes []byte, dest string, lim Limits) (err error) {
	a, err := inspect(zipBytes, lim)
	if err != nil {
		return err
	}
	dest = filepath.Clean(dest)
	if err := checkDest(dest); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".unpack-")
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer func() {
		if err != nil {
			_ = RemoveTree(tmp)
		}
	}()
	if err := fill(tmp, a, lim); err != nil {
		return err
	}
	// os.Rename refuses to replace even an empty directory: remove it first
	// (os.Remove fails, harmlessly, if it has been filled meanwhile).
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrDestExists, dest)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if checkDest(dest) != nil {
			return fmt.Errorf("%w: %s", ErrDestExists, dest)
		}
		return fmt.Errorf("unpack: %w", err)
	}
	if err := os.Chmod(dest, modeDir); err != nil {
		_ = RemoveTree(dest)
		return fmt.Errorf("unpack: %w", err)
	}
	return nil
}

// checkDest reports an error unless dest is absent or an empty directory.
func checkDest(dest string) error {
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrDestExists, dest)
	}
	d, err := os.Open(dest)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); err != io.EOF {
		return fmt.Errorf("%w: %s", ErrDestExists, dest)
	}
	return nil
}

// fill writes a's tree into the directory dir, which must be empty.
func fill(dir string, a *archive, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()

	dirs := map[string]bool{}
	mkdirAll := func(name string) error {
		if name == "." || dirs[name] {
			return nil
		}
		if err := root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		for d := name; d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		return nil
	}

	var total int64
	for i := range a.entries {
		e := &a.entries[i]
		switch e.kind {
		case kindDir:
			if err := mkdirAll(e.name); err != nil {
				return err
			}
		case kindFile:
			if err := mkdirAll(path.Dir(e.name)); err != nil {
				return err
			}
			n, err := writeFile(root, e, lim, total)
			total += n
			if err != nil {
				return err
			}
		}
	}
	// Symlinks last, so that no file is ever written through one.
	for i := range a.entries {
		e := &a.entries[i]
		if e.kind != kindSymlink {
			continue
		}
		if err := mkdirAll(path.Dir(e.name)); err != nil {
			return err
		}
		if err := root.Symlink(e.target, e.name); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	for d := range dirs {
		if err := root.Chmod(d, modeDir); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	return nil
}

func writeFile(root *os.Root, e *entry, lim Limits, used int64) (int64, error) {
	f, err := root.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("unpack: %w", err)
	}
	n, err := copyEntry(f, e, lim, used)
	if err == nil {
		mode := fs.FileMode(modeFile)
		if e.exec {
			mode = modeExec
		}
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("unpack: %w", cerr)
	}
	return n, err
}

// RemoveTree deletes a tree made by Unpack (or any tree with read-only
// directories): it makes each directory writable, then removes it all. A
// missing dir is not an error. Symlinks are removed, never followed.
func RemoveTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(dir)
}
