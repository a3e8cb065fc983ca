//go:build race

package nbio

import "syscall"

// Under the race detector reads and writes go through package syscall,
// which tells the detector that the kernel wrote p (a read) and that bytes
// written to a descriptor happen before their reading (a write): raw
// calls would hide both and raise false reports.

func rawRead(fd uintptr, p []byte) (int, syscall.Errno) { return call(syscall.Read(int(fd), p)) }

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) { return call(syscall.Write(int(fd), p)) }

func call(n int, err error) (int, syscall.Errno) {
	if err != nil {
		return max(n, 0), err.(syscall.Errno)
	}
	return n, 0
}
