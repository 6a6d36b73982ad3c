package export_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/export"
)

// TestDocsMatchOutput keeps docs/EXPORTS.md true: its example schema and
// table are what the exporter writes for the test fixture, and every file
// its recipes load is one the schedule writes.
func TestDocsMatchOutput(t *testing.T) {
	doc, err := os.ReadFile("../docs/EXPORTS.md")
	if err != nil {
		t.Fatal(err)
	}
	src, st := fixture(t)
	later(t, st)
	dir := t.TempDir()
	s := &export.Schedule{Dir: dir, Every: time.Hour, Formats: export.Formats, Segments: func() []string { return []string{"vip"} },
		Source: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	block := func(marker string) string {
		_, rest, ok := strings.Cut(string(doc), "<!-- "+marker+" -->\n```")
		if !ok {
			t.Fatalf("EXPORTS.md has no block marked %s", marker)
		}
		_, rest, _ = strings.Cut(rest, "\n") // the fence's language
		body, _, _ := strings.Cut(rest, "```")
		return body
	}
	var docSchema, gotSchema any
	got, _ := os.ReadFile(filepath.Join(dir, "vip", "members.schema.json"))
	if err := json.Unmarshal([]byte(block("members.schema.json")), &docSchema); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(got, &gotSchema)
	if !reflect.DeepEqual(docSchema, gotSchema) {
		t.Errorf("EXPORTS.md's members.schema.json differs from the output:\n%s", got)
	}
	ddl, _ := os.ReadFile(filepath.Join(dir, "vip", "members.redshift.sql"))
	if block("members.redshift.sql") != string(ddl) {
		t.Errorf("EXPORTS.md's members.redshift.sql differs from the output:\n%s", ddl)
	}
	// Every file a recipe names, with its run's stamp as a wildcard.
	stamp := regexp.MustCompile(`\d{8}T\d{6}\.\d{3}Z`)
	for _, ref := range regexp.MustCompile(`kiln-exports/vip/([A-Za-z0-9_.*-]+)`).FindAllStringSubmatch(string(doc), -1) {
		pattern := stamp.ReplaceAllString(ref[1], "*")
		if m, _ := filepath.Glob(filepath.Join(dir, "vip", pattern)); len(m) == 0 {
			t.Errorf("EXPORTS.md names %s, which the schedule does not write", ref[1])
		}
	}
}
