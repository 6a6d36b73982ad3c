//go:build unix

package intel

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system, all threads) the test binary
// has used: on a shared machine it says what a benchmark costs when wall
// time says how busy the machine was.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
