package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// kiln bench models runs end to end on a small demo and prints its table.
func TestBenchModelsSmoke(t *testing.T) {
	var out bytes.Buffer
	if err := runBenchModels(context.Background(), []string{"-customers", "200", "-dir", t.TempDir()}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"peak live heap during the refit", "peak RSS during the refit", "live heap after the refit"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
