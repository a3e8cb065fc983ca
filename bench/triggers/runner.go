package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// runner is the brokertest.T of this program: brokertest's starters run
// inside runner.do, where Fatalf ends the start (a panic that do turns
// into an error); Errorf collects errors that Close returns; Cleanup's
// functions run, last first, in Close.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	errs     []error
}

// fatal is what Fatalf panics with, for do to recover.
type fatal struct{ msg string }

func (r *runner) Helper() {}

func (r *runner) Fatalf(format string, args ...any) { panic(fatal{fmt.Sprintf(format, args...)}) }

func (r *runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Errorf(format, args...))
	r.mu.Unlock()
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// TempDir makes a directory that Close removes.
func (r *runner) TempDir() string {
	dir, err := os.MkdirTemp("", "nimbus-bench-triggers-broker")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// do runs f, which calls brokertest's starters with r, and returns what
// a Fatalf of theirs reported as an error. Any other panic goes on.
func (r *runner) do(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ft, ok := p.(fatal)
			if !ok {
				panic(p)
			}
			err = errors.New(ft.msg)
		}
	}()
	f()
	return nil
}

// Close runs the cleanups, last first, and returns the errors reported
// meanwhile and before.
func (r *runner) Close() error {
	r.mu.Lock()
	cs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux this runs on).
const clockTicks = 100

// groupCPU is the CPU time, in seconds, used so far by the live
// processes of process group pgid (user + system, not their reaped
// children's); 0 if pgid is 0.
func groupCPU(pgid int) float64 {
	if pgid == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if pgrp, t, ok := statCPU(e.Name()); ok && pgrp == strconv.Itoa(pgid) {
			ticks += t
		}
	}
	return float64(ticks) / clockTicks
}

// selfCPU is this process's CPU time in seconds (the publisher, the
// poller and the in-process Kafka broker).
func selfCPU() float64 {
	_, t, _ := statCPU("self")
	return float64(t) / clockTicks
}

// statCPU reads /proc/PID/stat: the process group and utime + stime in
// clock ticks.
func statCPU(pid string) (pgrp string, ticks int64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", 0, false
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state ppid pgrp ... utime (14th) stime (15th).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return "", 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return f[2], u + s, true
}
