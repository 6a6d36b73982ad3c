package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/rule/library"
)

// kiln test runs test files without a server: it prints failures as
// FILE:LINE and a summary per file, and fails when anything does.
func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("defs/shop.kiln", library.Source("shop.kiln"))
	good := write("tests/good_test.kilntest", `load "../defs/shop.kiln"   # a directory above the test's
at 2026-01-05 10:00
  user 42 "Order Completed" {"revenue": 500}
  expect user 42 in occasional_customers
`)
	bad := write("tests/bad_test.kilntest", `load "../defs/shop.kiln"
at 2026-01-05 10:00
  user 42 "Order Completed" {"revenue": 500}
  expect user 42 in high_value
`)
	broken := write("tests/broken_test.kilntest", `load "../defs/shop.kiln"
at 2026-01-05 10:00
  expect user 42 in high_valu
`)
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"test", good}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	// The summary counts the shipped shop's segments.
	segs := strings.Count(library.Source("shop.kiln"), "\nsegment ")
	if want := good + fmt.Sprintf(": 1 expectation, 0 failed; 1 of %d segments tested\n", segs); segs < 20 || out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}

	out.Reset()
	err := run(ctx, []string{"test", good, bad, broken}, &out, &out)
	if err == nil || err.Error() != "test: 2 of 3 files failed" {
		t.Errorf("error %v", err)
	}
	for _, want := range []string{
		bad + ":4: expected user 42 in high_value at 2026-01-05 10:00:00, but it is not\n    user 42 is OUT of high_value\n",
		bad + ": 1 expectation, 1 failed;",
		broken + `:3: unknown segment "high_valu" (did you mean high_value?)`,
		broken + ": not run: 1 problem in the file",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}

	// Definitions' errors point into the file they are in.
	write("defs/shop.kiln", "segment x { ghost > 1 }\n")
	out.Reset()
	if err := run(ctx, []string{"test", good}, &out, &out); err == nil || !strings.Contains(out.String(), filepath.Join(dir, "defs", "shop.kiln")+":1:13: unknown trait ghost") {
		t.Errorf("error %v, output:\n%s", err, &out)
	}
}
