//go:build unix

package identity

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used (all threads, so the
// garbage collector's work counts too). Benchmarks report throughput per
// CPU second as well as per wall second: the machines they run on are
// often shared, and wall time then measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
