package main

import (
	"os"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/rule"
)

// The definitions shown in the README must apply as written.
func TestReadmeDefinitionsParse(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```")
	found := false
	for i := 1; i < len(blocks); i += 2 {
		if strings.Contains(blocks[i], "segment high_value \"") {
			found = true
			if _, _, err := rule.Load(blocks[i], nil); err != nil {
				t.Errorf("README definitions do not parse: %v\n%s", err, blocks[i])
			}
		}
	}
	if !found {
		t.Fatal("README has no definitions block")
	}
}
