package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A shell is the host side of a pre-started sandbox's /var/task: an empty
// directory bind-mounted onto itself and made shared before the sandbox
// is cloned, so that the sandbox's copy (a slave of it) receives the code
// mount that AttachCode later makes on the host side. The sandbox cannot
// send anything back (slave propagation; mount is refused by seccomp).

// makeShell creates the shell directory for one sandbox.
func makeShell(dir string) error {
	// 0755: the sandbox's unprivileged user enters /var/task before the
	// code arrives on top of it.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dir)
		return fmt.Errorf("shell: bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		removeShell(dir)
		return fmt.Errorf("shell: make %s shared: %w", dir, err)
	}
	return nil
}

// stageCode makes a private, read-only (nosuid, nodev) bind mount of
// codeDir at stage, to be bound onto shells. The read-only flags must be
// on the mount that is bound: a remount does not propagate, so the copy a
// sandbox receives is only read-only if its source already was.
func stageCode(codeDir, stage string) error {
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(codeDir, stage, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("shell: stage %s: %w", codeDir, err)
	}
	if err := unix.Mount("", stage, "", unix.MS_PRIVATE, ""); err != nil {
		removeShell(stage)
		return fmt.Errorf("shell: make stage private: %w", err)
	}
	if err := unix.Mount("", stage, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		removeShell(stage)
		return fmt.Errorf("shell: stage read-only: %w", err)
	}
	return nil
}

// fillShell binds a staged (read-only) code mount onto a shell; the
// mount propagates into the sandbox.
func fillShell(shell, stage string) error {
	if err := unix.Mount(stage, shell, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("shell: attach code: %w", err)
	}
	return nil
}

// removeShell unmounts everything stacked on a shell and removes it.
func removeShell(dir string) error {
	for i := 0; i < 8; i++ {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break // nothing (more) mounted there
			}
			return fmt.Errorf("shell: unmount %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// sweepShells removes the shells a crashed worker left behind.
func sweepShells(base string) error {
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, removeShell(filepath.Join(base, e.Name())))
	}
	return errors.Join(errs...)
}
