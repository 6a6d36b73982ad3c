package main

import (
	"fmt"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
)

// Diagnostics for measuring start-up (kiln bench restart uses them):
//
//	KILN_CPUPROFILE=FILE   CPU profile of the process from its start until
//	                       the server is ready (serve), or until it exits
//	KILN_HEAPPROFILE=FILE  heap profile taken when the server is ready
//	KILN_DEBUG_ADDR=ADDR   serve net/http/pprof's /debug/pprof/ on ADDR
//	                       (kiln bench pipeline -profile uses it)
//
// Neither is set in normal use.

var profiling struct {
	once sync.Once
	on   bool
}

// startProfiling starts the CPU profile KILN_CPUPROFILE asks for.
func startProfiling() {
	if addr := os.Getenv("KILN_DEBUG_ADDR"); addr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		go func() {
			err := http.ListenAndServe(addr, mux)
			fmt.Fprintln(os.Stderr, "kiln: KILN_DEBUG_ADDR:", err)
		}()
	}
	path := os.Getenv("KILN_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln: KILN_CPUPROFILE:", err)
		return
	}
	profiling.on = true
}

// profileReady ends the start-up CPU profile and writes the heap profile:
// the server is ready. It is called again on exit, when it does nothing.
func profileReady() {
	profiling.once.Do(func() {
		if profiling.on {
			pprof.StopCPUProfile()
		}
		path := os.Getenv("KILN_HEAPPROFILE")
		if path == "" {
			return
		}
		f, err := os.Create(path)
		if err == nil {
			runtime.GC()
			err = pprof.WriteHeapProfile(f)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kiln: KILN_HEAPPROFILE:", err)
		}
	})
}
