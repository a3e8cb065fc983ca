package codepkg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// badCase is a package that Validate and Unpack must both refuse.
type badCase struct {
	name    string
	zip     func(t testing.TB) []byte
	lim     Limits
	want    error  // ErrInvalidPackage or ErrTooLarge
	mention string // the message must contain this (entry name or reason)
}

func badCases() []badCase {
	z := func(ents ...zent) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return mkzip(t, ents...) }
	}
	small := Limits{MaxZip: 1 << 20, MaxUnzipped: 64 << 10, MaxFiles: 10}
	return []badCase{
		{name: "random bytes are not a zip", zip: func(testing.TB) []byte { return []byte("this is not a zip file at all") },
			want: ErrInvalidPackage, mention: "not a readable zip"},
		{name: "an empty byte slice is not a zip", zip: func(testing.TB) []byte { return nil },
			want: ErrInvalidPackage, mention: "not a readable zip"},
		{name: "a truncated zip is refused", zip: func(t testing.TB) []byte {
			b := mkzip(t, file("main.py", "print(1)\n"))
			return b[:len(b)-10]
		}, want: ErrInvalidPackage, mention: "not a readable zip"},
		{name: "an entry whose data fails its checksum is refused", zip: func(t testing.TB) []byte {
			return corruptStored(t, "def handler(event, context): return 1\n")
		}, want: ErrInvalidPackage, mention: `"main.py" is corrupt`},
		{name: "an entry with an unknown compression method is refused",
			zip:  z(zent{name: "main.py", body: "x", method: 99}),
			want: ErrInvalidPackage, mention: "unsupported compression method 99"},
		{name: "an encrypted entry is refused", zip: z(zent{name: "main.py", body: "x", flags: 1}),
			want: ErrInvalidPackage, mention: "encrypted"},
		{name: "a zip with no entries holds no files", zip: z(), want: ErrInvalidPackage, mention: "no files"},
		{name: "a zip with only directories holds no files", zip: z(dir("a/"), dir("a/b/")),
			want: ErrInvalidPackage, mention: "no files"},
		{name: "a zip over MaxZip is refused before it is parsed", zip: func(testing.TB) []byte { return make([]byte, 2048) },
			lim: Limits{MaxZip: 1024}, want: ErrTooLarge, mention: "over the limit of 1024"},
		{name: "more entries than MaxFiles are refused", zip: func(t testing.TB) []byte {
			var ents []zent
			for i := range 11 {
				ents = append(ents, file(strings.Repeat("f", i+1)+".py", ""))
			}
			return mkzip(t, ents...)
		}, lim: small, want: ErrTooLarge, mention: "11 entries"},
		{name: "a highly compressible entry over MaxUnzipped is refused", zip: func(t testing.TB) []byte {
			return mkzip(t, zent{name: "bomb.py", body: strings.Repeat("\x00", 1<<20), method: 8})
		}, lim: small, want: ErrTooLarge, mention: "over the limit of 65536"},
		{name: "entries whose sizes add up past MaxUnzipped are refused", zip: func(t testing.TB) []byte {
			body := strings.Repeat("a", 40<<10)
			return mkzip(t, zent{name: "a.py", body: body, method: 8}, zent{name: "b.py", body: body, method: 8})
		}, lim: small, want: ErrTooLarge},
		{name: "a bomb whose header understates its size is refused", zip: func(t testing.TB) []byte {
			return lyingZip(t, 4<<20, 100)
		}, lim: small, want: ErrInvalidPackage, mention: "does not match its header"},
		{name: "a parent-directory entry is refused", zip: z(file("../evil.py", "x")),
			want: ErrInvalidPackage, mention: `"../evil.py": path has a ".." component`},
		{name: "a .. hidden in the middle of a path is refused", zip: z(file("a/../../evil.py", "x")),
			want: ErrInvalidPackage, mention: `".." component`},
		{name: "an absolute path is refused", zip: z(file("/abs.py", "x")),
			want: ErrInvalidPackage, mention: `"/abs.py": absolute path`},
		{name: "a backslash path is refused", zip: z(file(`..\evil.py`, "x")),
			want: ErrInvalidPackage, mention: "backslash"},
		{name: "a drive letter is refused", zip: z(file("C:/evil.py", "x")),
			want: ErrInvalidPackage, mention: "drive letter"},
		{name: "an empty path component is refused", zip: z(file("a//b.py", "x")),
			want: ErrInvalidPackage, mention: "empty"},
		{name: "a NUL byte in a name is refused", zip: z(file("a\x00.py", "x")),
			want: ErrInvalidPackage, mention: "NUL"},
		{name: "a symlink climbing out of the root is refused", zip: z(file("main.py", "x"), symlink("passwd", "../../etc/passwd")),
			want: ErrInvalidPackage, mention: `symlink "passwd" -> "../../etc/passwd"`},
		{name: "a nested symlink climbing out of the root is refused", zip: z(file("main.py", "x"), symlink("a/b/up", "../../..")),
			want: ErrInvalidPackage, mention: "outside the package root"},
		{name: "an absolute symlink is refused", zip: z(file("main.py", "x"), symlink("passwd", "/etc/passwd")),
			want: ErrInvalidPackage, mention: "absolute target"},
		{name: "a symlink climbing out through another symlink is refused",
			zip:  z(file("main.py", "x"), symlink("d/up", ".."), symlink("l", "d/up/..")),
			want: ErrInvalidPackage, mention: `symlink "l"`},
		{name: "symlinks that loop are refused", zip: z(file("main.py", "x"), symlink("a", "b"), symlink("b", "a")),
			want: ErrInvalidPackage, mention: "too many levels"},
		{name: "a file below a symlink is refused", zip: z(symlink("lib", "sub"), file("lib/x.py", "x"), dir("sub/")),
			want: ErrInvalidPackage, mention: `lies below "lib"`},
		{name: "a file below a file is refused", zip: z(file("main.py", "x"), file("main.py/x.py", "x")),
			want: ErrInvalidPackage, mention: `lies below "main.py"`},
		{name: "a block device is refused", zip: z(file("main.py", "x"), zent{name: "sda", mode: fs.ModeDevice | 0o600}),
			want: ErrInvalidPackage, mention: `"sda": is a device file`},
		{name: "a character device is refused", zip: z(file("main.py", "x"), zent{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}),
			want: ErrInvalidPackage, mention: "device file"},
		{name: "a fifo is refused", zip: z(file("main.py", "x"), zent{name: "pipe", mode: fs.ModeNamedPipe | 0o600}),
			want: ErrInvalidPackage, mention: "named pipe"},
		{name: "a socket is refused", zip: z(file("main.py", "x"), zent{name: "sock", mode: fs.ModeSocket | 0o600}),
			want: ErrInvalidPackage, mention: "socket"},
		{name: "a duplicate name is refused", zip: z(file("main.py", "a"), file("main.py", "b")),
			want: ErrInvalidPackage, mention: `"main.py" duplicates entry "main.py"`},
		{name: "a duplicate spelled differently is refused", zip: z(file("main.py", "a"), file("./main.py", "b")),
			want: ErrInvalidPackage, mention: "duplicates"},
		{name: "a file and a directory of the same name are refused", zip: z(file("a", "x"), dir("a/")),
			want: ErrInvalidPackage, mention: "duplicates"},
	}
}

func TestValidateRefusesBadPackages(t *testing.T) {
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			if lim == (Limits{}) {
				lim = DefaultLimits()
			}
			_, err := Validate(tc.zip(t), lim)
			checkErr(t, err, tc.want, tc.mention)
		})
	}
}

func checkErr(t *testing.T, err, want error, mention string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	other := ErrTooLarge
	if want == ErrTooLarge {
		other = ErrInvalidPackage
	}
	if errors.Is(err, other) {
		t.Errorf("err = %v is both %v and %v", err, want, other)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("err = %q, want it to mention %q", err, mention)
	}
}

func TestValidateAcceptsGoodPackages(t *testing.T) {
	tests := []struct {
		name  string
		ents  []zent
		files int
		size  int64
	}{
		{"a single handler file is a package", []zent{file("main.py", "def handler(e, c): pass\n")}, 1, 24},
		{"nested directories with and without entries are fine",
			[]zent{dir("pkg/"), file("pkg/__init__.py", ""), file("pkg/sub/mod.py", "x = 1\n"), file("main.py", "")}, 3, 6},
		{"leading ./ and a ./ root entry are tolerated", []zent{dir("./"), file("./main.py", "ab")}, 1, 2},
		{"a symlink to a file inside the root is fine",
			[]zent{file("pkg/real.py", "abc"), symlink("lib.py", "pkg/real.py")}, 2, 14},
		{"a symlink climbing up but staying inside is fine",
			[]zent{file("main.py", "x"), symlink("a/b/main.py", "../../main.py")}, 2, 14},
		{"a symlink to the root itself is fine", []zent{file("main.py", "x"), symlink("a/root", "..")}, 2, 3},
		{"a symlink through another in-root symlink is fine",
			[]zent{file("d/x.py", "x"), symlink("d/self", "."), symlink("l", "d/self/x.py")}, 3, 1 + 1 + 11},
		{"a dangling symlink inside the root is fine", []zent{file("main.py", "x"), symlink("gone", "missing/file")}, 2, 13},
		{"an executable file is fine", []zent{zent{name: "run.sh", body: "#!/bin/sh\n", mode: 0o755}}, 1, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mkzip(t, tc.ents...)
			info, err := Validate(b, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			want := Info{Files: tc.files, UnzippedSize: tc.size, SHA256: hex.EncodeToString(sum[:])}
			if info != want {
				t.Errorf("info = %+v, want %+v", info, want)
			}
		})
	}
}

func TestValidateWithZeroLimitsMeansNoLimits(t *testing.T) {
	b := mkzip(t, zent{name: "big.py", body: strings.Repeat("x", 1<<20), method: 8})
	if _, err := Validate(b, Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestUnpackRefusesBadPackagesAndLeavesNoTrace(t *testing.T) {
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			if lim == (Limits{}) {
				lim = DefaultLimits()
			}
			base := t.TempDir()
			parent := filepath.Join(base, "a", "b")
			if err := os.MkdirAll(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(parent, "dest")
			err := Unpack(tc.zip(t), dest, lim)
			checkErr(t, err, tc.want, tc.mention)
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dest exists after a failed Unpack (Lstat err = %v)", err)
			}
			if got := tree(t, base); strings.Join(got, ",") != "a,a/b" {
				t.Errorf("tree after a failed Unpack = %q, want only the empty parents", got)
			}
		})
	}
}

func TestLyingBombIsStoppedEarly(t *testing.T) {
	// Whatever the headers say, neither Validate nor Unpack may decompress
	// far past what the limits allow.
	b := lyingZip(t, 64<<20, 10)
	if len(b) > 256<<10 {
		t.Fatalf("test bomb is %d bytes, expected a small zip", len(b))
	}
	base := t.TempDir()
	err := Unpack(b, filepath.Join(base, "dest"), Limits{MaxUnzipped: 1 << 20})
	if !errors.Is(err, ErrInvalidPackage) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if got := tree(t, base); len(got) != 0 {
		t.Errorf("left behind %q", got)
	}
}
