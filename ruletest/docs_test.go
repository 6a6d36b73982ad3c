package ruletest

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kiln-cdp/kiln/rule/library"
)

// The complete examples in docs/TESTING_DEFINITIONS.md (```kilntest
// blocks) and the README's run and pass as written.
func TestDocExamples(t *testing.T) {
	var examples []string
	b, err := os.ReadFile("../docs/TESTING_DEFINITIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```")
	for i := 1; i < len(blocks); i += 2 {
		if text, ok := strings.CutPrefix(blocks[i], "kilntest\n"); ok {
			examples = append(examples, text)
		}
	}
	if len(examples) < 2 {
		t.Errorf("only %d runnable examples in docs/TESTING_DEFINITIONS.md", len(examples))
	}
	b, err = os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks = strings.Split(string(b), "```")
	for i := 1; i < len(blocks); i += 2 {
		if strings.Contains(blocks[i], "# vip_test.kilntest") {
			examples = append(examples, blocks[i])
		}
	}
	if len(examples) < 3 {
		t.Error("no test example in the README")
	}
	for n, text := range examples {
		tt, err := Parse(fstest.MapFS{
			"doc.kilntest": {Data: []byte(text)},
			"shop.kiln":    {Data: []byte(library.Source("shop.kiln"))},
		}, "doc.kilntest")
		if err != nil {
			t.Errorf("example %d:\n%s\n%v", n+1, text, err)
			continue
		}
		res := tt.Run()
		for _, f := range res.Failures {
			t.Errorf("example %d: %s", n+1, f)
		}
	}
}
