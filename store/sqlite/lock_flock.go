//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/kiln-cdp/kiln/store"
)

// lockFile takes an exclusive flock on path, without waiting, for the
// database dbPath.
func lockFile(path, dbPath string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", dbPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &store.LockedError{Store: dbPath, Holder: holderOf(f)}
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	// Say who holds it; failing to only costs the next error its PID.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.Truncate(0) // the PID is no longer the holder's
			f.Close()     // dropping the last descriptor drops the flock
		})
	}, nil
}
