package codepkg

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// Bounds on single entries, independent of Limits.
const (
	maxNameLen      = 4096 // bytes of an entry's full path
	maxComponentLen = 255  // bytes of one path component
	maxLinkTarget   = 4096 // bytes of a symlink's target
	maxLinkDepth    = 40   // nested symlinks followed while resolving one
	maxLinkSteps    = 10000
)

type entryKind int

const (
	kindFile entryKind = iota
	kindDir
	kindSymlink
)

// entry is one checked zip entry.
type entry struct {
	f      *zip.File
	name   string // clean relative slash path, no trailing slash, never "." or ""
	kind   entryKind
	exec   bool   // any execute bit set in the zip's mode (files only)
	target string // symlink target as stored (symlinks only)
}

// archive is a zip whose structure passed every check that does not need the
// entries' contents (sizes are declared ones, not yet verified).
type archive struct {
	entries []entry
	files   int // non-directory entries
}

// Validate checks zipBytes against lim and the rules of docs/spec.md §2:
// a readable zip of at most lim.MaxZip bytes and lim.MaxFiles entries, at
// least one file, no absolute paths, drive letters, backslashes or ".."
// components, no duplicate names, no entry below a file or symlink, no
// device, fifo or socket entries, no encrypted entries, and symlinks only
// when they resolve inside the package root. It decompresses every entry,
// so corrupt data (CRC mismatch, headers that lie about sizes) is caught
// here, and stops as soon as more than lim.MaxUnzipped bytes came out.
//
// Errors wrap ErrInvalidPackage or ErrTooLarge.
func Validate(zipBytes []byte, lim Limits) (Info, error) {
	a, err := inspect(zipBytes, lim)
	if err != nil {
		return Info{}, err
	}
	var total int64
	for i := range a.entries {
		e := &a.entries[i]
		if e.kind == kindDir {
			continue
		}
		n, err := copyEntry(io.Discard, e, lim, total)
		total += n
		if err != nil {
			return Info{}, err
		}
	}
	return Info{Files: a.files, UnzippedSize: total, SHA256: sha256Hex(zipBytes)}, nil
}

// copyEntry decompresses e into w and returns how many bytes it wrote.
// used is how many bytes earlier entries produced; once used plus this
// entry's bytes pass lim.MaxUnzipped it stops with ErrTooLarge, whatever
// the header declared. Corrupt data gives ErrInvalidPackage; an error from
// w is returned wrapped as is (it is not the package's fault).
func copyEntry(w io.Writer, e *entry, lim Limits, used int64) (int64, error) {
	rc, err := e.f.Open()
	if err != nil {
		return 0, entryReadErr(e, err)
	}
	defer rc.Close()
	rd := &errReader{r: rc}
	var r io.Reader = rd
	if lim.MaxUnzipped > 0 {
		r = io.LimitReader(rd, lim.MaxUnzipped-used+1)
	}
	n, err := io.Copy(w, r)
	switch {
	case rd.err != nil:
		return n, entryReadErr(e, rd.err)
	case err != nil:
		return n, fmt.Errorf("entry %q: %w", e.f.Name, err)
	case lim.MaxUnzipped > 0 && used+n > lim.MaxUnzipped:
		return n, fmt.Errorf("%w: unzipped contents pass the limit of %d bytes at entry %q", ErrTooLarge, lim.MaxUnzipped, e.f.Name)
	}
	return n, nil
}

// errReader remembers the first read error other than io.EOF, so that
// copyEntry can tell a corrupt entry from a failing writer.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func entryReadErr(e *entry, err error) error {
	switch {
	case errors.Is(err, zip.ErrAlgorithm):
		return fmt.Errorf("%w: entry %q uses unsupported compression method %d", ErrInvalidPackage, e.f.Name, e.f.Method)
	case errors.Is(err, zip.ErrChecksum):
		return fmt.Errorf("%w: entry %q is corrupt: checksum mismatch", ErrInvalidPackage, e.f.Name)
	case errors.Is(err, zip.ErrFormat):
		return fmt.Errorf("%w: entry %q is corrupt: its data does not match its header (declared %d bytes)", ErrInvalidPackage, e.f.Name, e.f.UncompressedSize64)
	default:
		return fmt.Errorf("%w: entry %q is corrupt: %v", ErrInvalidPackage, e.f.Name, err)
	}
}

// inspect parses zipBytes and checks everything but the entries' contents
// (symlink targets excepted, which it reads).
func inspect(zipBytes []byte, lim Limits) (*archive, error) {
	if lim.MaxZip > 0 && int64(len(zipBytes)) > lim.MaxZip {
		return nil, fmt.Errorf("%w: zip is %d bytes, over the limit of %d", ErrTooLarge, len(zipBytes), lim.MaxZip)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// ErrInsecurePath (GODEBUG zipinsecurepath=0) is left to our own,
		// more precise, per-entry checks.
		return nil, fmt.Errorf("%w: not a readable zip archive: %v", ErrInvalidPackage, err)
	}
	if lim.MaxFiles > 0 && len(zr.File) > lim.MaxFiles {
		return nil, fmt.Errorf("%w: %d entries, over the limit of %d", ErrTooLarge, len(zr.File), lim.MaxFiles)
	}

	a := &archive{entries: make([]entry, 0, len(zr.File))}
	byName := make(map[string]int, len(zr.File)) // clean name -> index in a.entries
	var declared uint64
	for _, f := range zr.File {
		e, skip, err := checkEntry(f)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		if prev, dup := byName[e.name]; dup {
			return nil, fmt.Errorf("%w: entry %q duplicates entry %q", ErrInvalidPackage, f.Name, a.entries[prev].f.Name)
		}
		byName[e.name] = len(a.entries)
		if e.kind != kindDir {
			a.files++
			declared += f.UncompressedSize64
		}
		a.entries = append(a.entries, e)
	}
	if a.files == 0 {
		return nil, fmt.Errorf("%w: the zip holds no files", ErrInvalidPackage)
	}
	if lim.MaxUnzipped > 0 && declared > uint64(lim.MaxUnzipped) {
		return nil, fmt.Errorf("%w: entries declare %d unzipped bytes, over the limit of %d", ErrTooLarge, declared, lim.MaxUnzipped)
	}

	// No entry may live below a file or a symlink: that would either fail
	// or write through the link.
	for _, e := range a.entries {
		for i := strings.IndexByte(e.name, '/'); i >= 0; i = nextSlash(e.name, i) {
			if j, ok := byName[e.name[:i]]; ok && a.entries[j].kind != kindDir {
				return nil, fmt.Errorf("%w: entry %q lies below %q, which is not a directory", ErrInvalidPackage, e.f.Name, a.entries[j].f.Name)
			}
		}
	}

	links := make(map[string]string)
	for i := range a.entries {
		e := &a.entries[i]
		if e.kind != kindSymlink {
			continue
		}
		t, err := readLinkTarget(e.f)
		if err != nil {
			return nil, err
		}
		if err := checkLinkTarget(e.f.Name, t); err != nil {
			return nil, err
		}
		e.target = t
		links[e.name] = t
	}
	for _, e := range a.entries {
		if e.kind != kindSymlink {
			continue
		}
		if err := resolveInRoot(links, e.name, e.target); err != nil {
			return nil, fmt.Errorf("%w: symlink %q -> %q: %v", ErrInvalidPackage, e.f.Name, e.target, err)
		}
	}
	return a, nil
}

func nextSlash(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// checkEntry checks one entry's name and type. skip reports an entry that
// names the root itself ("./"), which carries nothing.
func checkEntry(f *zip.File) (e entry, skip bool, err error) {
	bad := func(format string, args ...any) (entry, bool, error) {
		return entry{}, false, fmt.Errorf("%w: entry %q: %s", ErrInvalidPackage, f.Name, fmt.Sprintf(format, args...))
	}
	name, err := cleanName(f.Name)
	if err != nil {
		return bad("%v", err)
	}
	if f.Flags&0x1 != 0 {
		return bad("is encrypted")
	}
	mode := f.Mode()
	isDirName := strings.HasSuffix(f.Name, "/")
	switch t := mode.Type(); {
	case t&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return bad("is a device file")
	case t&fs.ModeNamedPipe != 0:
		return bad("is a named pipe")
	case t&fs.ModeSocket != 0:
		return bad("is a socket")
	case t&fs.ModeSymlink != 0:
		if isDirName {
			return bad("is marked both a symlink and a directory")
		}
		e.kind = kindSymlink
	case t&fs.ModeDir != 0:
		e.kind = kindDir
	case t == 0:
		if isDirName {
			e.kind = kindDir
		} else {
			e.kind = kindFile
			e.exec = mode.Perm()&0o111 != 0
		}
	default:
		return bad("has unsupported file type %v", t)
	}
	if name == "" {
		if e.kind != kindDir {
			return bad("names the package root but is not a directory")
		}
		return entry{}, true, nil
	}
	e.f, e.name = f, name
	return e, false, nil
}

// cleanName turns a zip entry name into a clean relative slash path ("" for
// the root), refusing anything that could name a place outside the root or
// be read two ways. Leading "./" components are tolerated.
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("empty name")
	case len(raw) > maxNameLen:
		return "", fmt.Errorf("name longer than %d bytes", maxNameLen)
	case !utf8.ValidString(raw):
		return "", errors.New("name is not valid UTF-8")
	case strings.ContainsRune(raw, 0):
		return "", errors.New("name contains a NUL byte")
	case strings.Contains(raw, `\`):
		return "", errors.New(`name contains a backslash; use "/" as separator`)
	case raw[0] == '/':
		return "", errors.New("absolute path")
	case len(raw) >= 2 && raw[1] == ':' && isLetter(raw[0]):
		return "", errors.New("path starts with a drive letter")
	}
	s := strings.TrimSuffix(raw, "/")
	for strings.HasPrefix(s, "./") {
		s = s[2:]
	}
	if s == "." || s == "" {
		return "", nil
	}
	for _, c := range strings.Split(s, "/") {
		switch {
		case c == "..":
			return "", errors.New(`path has a ".." component`)
		case c == "" || c == ".":
			return "", errors.New(`path has an empty or "." component`)
		case len(c) > maxComponentLen:
			return "", fmt.Errorf("path component longer than %d bytes", maxComponentLen)
		}
	}
	return s, nil
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

func readLinkTarget(f *zip.File) (string, error) {
	if f.UncompressedSize64 > maxLinkTarget {
		return "", fmt.Errorf("%w: symlink %q: target longer than %d bytes", ErrInvalidPackage, f.Name, maxLinkTarget)
	}
	rc, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("%w: symlink %q is corrupt: %v", ErrInvalidPackage, f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return "", fmt.Errorf("%w: symlink %q is corrupt: %v", ErrInvalidPackage, f.Name, err)
	}
	if len(b) > maxLinkTarget {
		return "", fmt.Errorf("%w: symlink %q: target longer than %d bytes", ErrInvalidPackage, f.Name, maxLinkTarget)
	}
	return string(b), nil
}

// checkLinkTarget refuses targets that are unsafe whatever the tree holds.
func checkLinkTarget(name, t string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: symlink %q -> %q: %s", ErrInvalidPackage, name, t, why)
	}
	switch {
	case t == "":
		return bad("empty target")
	case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return bad("target is not clean UTF-8 text")
	case strings.Contains(t, `\`):
		return bad("target contains a backslash")
	case t[0] == '/':
		return bad("absolute target points outside the package")
	case len(t) >= 2 && t[1] == ':' && isLetter(t[0]):
		return bad("target starts with a drive letter")
	}
	return nil
}

var errEscapes = errors.New("target resolves outside the package root")

// resolveInRoot follows the symlink at name (target t) through the package
// tree, itself following nested symlinks as the kernel would, and reports
// an error if any step climbs above the root or the links loop. links maps
// each symlink's clean name to its target.
func resolveInRoot(links map[string]string, name, t string) error {
	steps := 0
	dir := strings.Split(name, "/")
	dir = dir[:len(dir)-1]
	_, err := resolve(links, dir, t, 0, &steps)
	return err
}

func resolve(links map[string]string, dir []string, t string, depth int, steps *int) ([]string, error) {
	if depth > maxLinkDepth {
		return nil, errors.New("too many levels of symlinks")
	}
	cur := append([]string(nil), dir...)
	for _, c := range strings.Split(t, "/") {
		*steps++
		if *steps > maxLinkSteps {
			return nil, errors.New("too many levels of symlinks")
		}
		switch c {
		case "", ".":
		case "..":
			if len(cur) == 0 {
				return nil, errEscapes
			}
			cur = cur[:len(cur)-1]
		default:
			cur = append(cur, c)
			next, ok := links[strings.Join(cur, "/")]
			if !ok {
				continue
			}
			if next == "" || next[0] == '/' {
				return nil, errEscapes
			}
			r, err := resolve(links, cur[:len(cur)-1], next, depth+1, steps)
			if err != nil {
				return nil, err
			}
			cur = r
		}
	}
	return cur, nil
}
