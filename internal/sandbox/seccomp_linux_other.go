//go:build linux && !amd64

package sandbox

import "errors"

// LoadSeccomp fails: the seccomp filter is written for the x86_64 syscall
// table and ABI only, and a sandbox must not start without it.
func LoadSeccomp() error {
	return errors.New("sandbox: seccomp filter is only built for linux/amd64")
}
