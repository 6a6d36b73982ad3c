// Package library ships ready definition sets as .kiln files: shop.kiln
// for a chinaware shop and restaurant.kiln for a restaurant group. Their
// names do not collide, so they also compile together (All). Tests in
// this package compile them, so a shipped file always applies cleanly,
// and run each file's definition tests, NAME_test.kilntest (package
// ruletest; `kiln test rule/library/shop_test.kilntest`).
package library

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.kiln
var files embed.FS

// Names lists the shipped files.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// Source returns a shipped file's text, or "" if there is none.
func Source(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		return ""
	}
	return string(b)
}

// All returns every shipped file, concatenated.
func All() string {
	var b strings.Builder
	for _, n := range Names() {
		b.WriteString(Source(n))
		b.WriteString("\n")
	}
	return b.String()
}
