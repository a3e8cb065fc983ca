// Package codepkg owns function packages (docs/spec.md §2): it validates
// uploaded zips, unpacks them safely, zips a directory for the CLI and reads
// and checks the nimbus.yaml manifest.
//
// Every problem with a package's bytes is reported as an error wrapping
// ErrInvalidPackage or ErrTooLarge, and every problem with a function's
// configuration as one wrapping ErrInvalidConfig; callers tell them apart
// with errors.Is and show the message, which names the entry or field at
// fault, to the user as is.
//
// The package holds no state; all functions are safe for concurrent use.
//
// Usage, on the CLI side:
//
//	cfg, found, err := codepkg.LoadManifest(dir)
//	// ... apply flags over cfg ...
//	if err := codepkg.ValidateConfig(wire.ModelFunctionConfig(cfg)); err != nil { ... }
//	zipBytes, err := codepkg.ZipDir(dir, codepkg.DefaultLimits(), nil)
//
// and on the server side:
//
//	info, err := codepkg.Validate(zipBytes, codepkg.DefaultLimits())
//	err = codepkg.Unpack(zipBytes, cacheDir, codepkg.DefaultLimits())
package codepkg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Sentinel errors. Returned errors wrap one of them with a message saying
// which entry or field is at fault and why.
var (
	// ErrInvalidPackage: the zip is corrupt or holds something a package
	// may not hold (paths escaping the root, devices, duplicates, ...).
	ErrInvalidPackage = errors.New("invalid package")
	// ErrTooLarge: the zip, its unzipped contents or its entry count is
	// over the Limits.
	ErrTooLarge = errors.New("package too large")
	// ErrInvalidConfig: a manifest or FunctionConfig is malformed or out of
	// range.
	ErrInvalidConfig = errors.New("invalid function config")
)

// Limits bound a package. A zero or negative field means "no limit"; use
// DefaultLimits for the limits of docs/spec.md §2.
type Limits struct {
	MaxZip      int64 // bytes of the zip itself
	MaxUnzipped int64 // bytes of all entries' contents, actually decompressed
	MaxFiles    int   // entries of any kind: files, directories, symlinks
}

// DefaultLimits returns the spec limits: zip 50 MB, unzipped 250 MB, 20000
// entries.
func DefaultLimits() Limits {
	return Limits{MaxZip: 50 << 20, MaxUnzipped: 250 << 20, MaxFiles: 20000}
}

// LayerLimits bound a layer (a function's dependencies): the 250 MB
// unzipped that Lambda gives a function and its layers together, and as
// many files as packages bring.
func LayerLimits() Limits {
	return Limits{MaxZip: 250 << 20, MaxUnzipped: 250 << 20, MaxFiles: 100_000}
}

// Info describes a valid package.
type Info struct {
	Files        int    // non-directory entries (regular files and symlinks)
	UnzippedSize int64  // bytes of all entries' contents, as decompressed
	SHA256       string // lowercase hex SHA-256 of the zip bytes
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
