package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Lock implements store.Store with an exclusive flock on a file beside
// the database, path+".lock", which records the holder's PID for the next
// process's error.
//
// The lock is on a file of its own, not on the database: SQLite's locks on
// the database file are POSIX locks, which the process loses when any of
// its descriptors of that file is closed, so Kiln opening the file itself
// could silently drop them (https://sqlite.org/howtocorrupt.html, 2.2).
// A file of its own also exists before the database does, and survives
// kiln demo -reset deleting the database. It is never removed: a process
// removing it could let two others lock two different files of one name.
// Its locking is independent of WAL mode, which readers and writers in
// other processes (kiln keys, kiln import) keep using as before.
//
// The kernel drops a flock when the process ends, however it ends.
func (db *DB) Lock(ctx context.Context) (release func(), err error) {
	return lockFile(lockPath(db.path), db.path)
}

// lockPath is the lock file of the database at path. A symbolic link is
// followed, so that two names of one database share one lock.
func lockPath(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path + ".lock"
}

// holderOf reads the PID the holder wrote into the lock file: "pid 1234",
// or "" if there is none yet.
func holderOf(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return ""
	}
	return "pid " + strconv.Itoa(pid)
}
