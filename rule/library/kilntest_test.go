package library_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/ruletest"
)

// Every shipped file has a test file (NAME_test.kilntest) that passes
// and names at least half of the file's segments in its expectations.
func TestShippedDefinitionTests(t *testing.T) {
	for _, name := range library.Names() {
		test := strings.TrimSuffix(name, ".kiln") + "_test.kilntest"
		t.Run(test, func(t *testing.T) {
			if _, err := os.Stat(test); err != nil {
				t.Fatalf("%s has no test file: %v", name, err)
			}
			tt, err := ruletest.Parse(os.DirFS("."), test)
			if err != nil {
				t.Fatal(err)
			}
			res := tt.Run()
			for _, f := range res.Failures {
				t.Error(f)
			}
			if 2*len(res.Tested) < len(res.Segments) {
				t.Errorf("%s: only %d of %d segments tested", test, len(res.Tested), len(res.Segments))
			}
			t.Log(res.Summary())
		})
	}
	files, _ := filepath.Glob("*.kilntest")
	if len(files) != len(library.Names()) {
		t.Errorf("test files %v for shipped files %v", files, library.Names())
	}
}
