package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kiln-cdp/kiln/ruletest"
)

const testUsage = `Usage: kiln test [-v] FILE...

Runs definition tests (.kilntest files: events at instants, then the
memberships, trait values, explanations and transitions expected later)
without a server or database. Failures are printed as FILE:LINE: what was
expected and what was found; the command exits non-zero if any fails.
The format: docs/TESTING_DEFINITIONS.md.`

func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, testUsage)
		fs.PrintDefaults()
	}
	verbose := fs.Bool("v", false, "also list expectations known to fail (expect-fail) and the segments no expectation names")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("test: give one or more test files")
	}
	failed := 0
	for _, arg := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !runTestFile(arg, *verbose, stdout) {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("test: %d of %d files failed", failed, fs.NArg())
	}
	return nil
}

// runTestFile runs one test file, prints what it finds and reports
// whether everything held.
func runTestFile(arg string, verbose bool, w io.Writer) bool {
	abs, err := filepath.Abs(arg)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", arg, err)
		return false
	}
	// Read from the file system root, so the test may load definitions
	// from a directory above its own; print paths as the user gave them.
	root := filepath.VolumeName(abs) + string(filepath.Separator)
	name := filepath.ToSlash(strings.TrimPrefix(abs, root))
	display := func(f string) string {
		if f == name {
			return arg
		}
		if strings.HasPrefix(f, "library ") {
			return f
		}
		// A loaded file, named as seen from the test file's directory as
		// the user named it.
		p := filepath.Join(root, filepath.FromSlash(f))
		if rel, err := filepath.Rel(filepath.Dir(abs), p); err == nil {
			return filepath.Join(filepath.Dir(arg), rel)
		}
		return p
	}
	t, err := ruletest.Parse(os.DirFS(root), name)
	if err != nil {
		var list ruletest.ErrorList
		if !errors.As(err, &list) {
			fmt.Fprintf(w, "%s: %v\n", arg, err)
			return false
		}
		for _, e := range list {
			e.File = display(e.File)
			fmt.Fprintln(w, e)
		}
		fmt.Fprintf(w, "%s: not run: %d %s in the file\n", arg, len(list), map[bool]string{true: "problem", false: "problems"}[len(list) == 1])
		return false
	}
	res := t.Run()
	res.File = arg
	for _, f := range res.Failures {
		f.File = display(f.File)
		fmt.Fprintln(w, f)
	}
	if verbose {
		for _, f := range res.Known {
			f.File = display(f.File)
			fmt.Fprintf(w, "%s:%d: known to fail (expect-fail): %s\n", f.File, f.Line, f.Msg)
		}
		var untested []string
		for _, s := range res.Segments {
			if !slices.Contains(res.Tested, s) {
				untested = append(untested, s)
			}
		}
		if len(untested) > 0 {
			fmt.Fprintf(w, "%s: no expectation names %s\n", arg, strings.Join(untested, ", "))
		}
	}
	fmt.Fprintln(w, res.Summary())
	return res.OK()
}
