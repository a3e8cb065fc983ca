package codepkg

import (
	"fmt"
	"regexp"
)

// The custom runtime (Lambda's "provided"): the package's own executable
// bootstrap serves invocations over the Lambda Runtime API (see
// internal/runtime/provided). Lambda's names for its Amazon Linux
// generations are accepted as aliases and stored as ProvidedRuntime.
const (
	ProvidedRuntime = "provided"
	// BootstrapFile is the executable a provided function's package holds
	// at its root.
	BootstrapFile = "bootstrap"
)

// providedAliases are the other names of ProvidedRuntime.
var providedAliases = []string{"provided.al2", "provided.al2023"}

// providedHandlerRe is what a provided function's handler may be: any
// short printable string, which the bootstrap reads from _HANDLER and
// interprets as it likes.
var providedHandlerRe = regexp.MustCompile(`^[[:graph:]][[:print:]]{0,127}$`)

// CanonicalRuntime returns the name a runtime is stored under: the
// provided runtime's aliases become ProvidedRuntime; every other name is
// returned as is.
func CanonicalRuntime(name string) string {
	for _, a := range providedAliases {
		if name == a {
			return ProvidedRuntime
		}
	}
	return name
}

// IsProvided reports whether name is the provided runtime or one of its
// aliases.
func IsProvided(name string) bool { return CanonicalRuntime(name) == ProvidedRuntime }

// CheckBootstrap checks that zipBytes, the package of a provided
// function, holds an executable regular file named bootstrap at its root
// (a zip entry whose mode has an execute bit, as ZipDir records it). It
// reads no entry's contents; Validate checks the rest. The error wraps
// ErrInvalidPackage and says what to do.
func CheckBootstrap(zipBytes []byte) error {
	a, err := inspect(zipBytes, Limits{})
	if err != nil {
		return err
	}
	for _, e := range a.entries {
		if e.name != BootstrapFile {
			continue
		}
		switch {
		case e.kind == kindDir:
			return fmt.Errorf("%w: runtime %s runs the executable file %q at the package root, and it is a directory", ErrInvalidPackage, ProvidedRuntime, BootstrapFile)
		case e.kind == kindSymlink:
			return fmt.Errorf("%w: runtime %s runs the executable file %q at the package root, and it is a symlink: make it the program itself", ErrInvalidPackage, ProvidedRuntime, BootstrapFile)
		case !e.exec:
			return fmt.Errorf("%w: runtime %s runs the file %q at the package root, and it is not executable (chmod +x %s)", ErrInvalidPackage, ProvidedRuntime, BootstrapFile, BootstrapFile)
		}
		return nil
	}
	return fmt.Errorf("%w: runtime %s needs an executable file named %q at the package root (the program that serves the Runtime API), and there is none", ErrInvalidPackage, ProvidedRuntime, BootstrapFile)
}
