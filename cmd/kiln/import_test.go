package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

func kilnCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// The CDNOW sample goes in through kiln import; a second run adds nothing.
func TestImportCDNOW(t *testing.T) {
	path := "../../../shared/data/CDNOW_sample.txt"
	if _, err := os.Stat(path); err != nil {
		t.Skip("../shared/data/CDNOW_sample.txt is absent (the shared data folder is beside the project root)")
	}
	db := filepath.Join(t.TempDir(), "k.db")
	out, errs, err := kilnCmd(t, "import", "-db", db, "-file", path, "-preset", "cdnow", "-source", "cdnow", "-quiet")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "6919 events (6919 new), 0 rejected") {
		t.Errorf("first import: %s", out)
	}
	out, _, err = kilnCmd(t, "import", "-db", db, "-file", path, "-preset", "cdnow", "-source", "cdnow", "-quiet", "-restart")
	if err != nil || !strings.Contains(out, "(0 new)") {
		t.Errorf("second import added events: %s %v", out, err)
	}
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, _ := st.CountEvents(context.Background()); n != 6919 {
		t.Errorf("%d events stored, want 6919", n)
	}
}

// Every bad row is reported with its line number and reason, in the output,
// the report file and the rejects log; the good rows are stored.
func TestImportReportsEveryRejectedRow(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "k.db")
	csv := "customer,when,amount\n" +
		"c1,2024-01-02T10:00:00Z,12.50\n" +
		"c2,not a date,3\n" +
		",2024-01-03T10:00:00Z,4\n" +
		"c3,2024-01-04T10:00:00Z,lots\n" +
		"c4,2024-01-05T10:00:00Z,7\n"
	file := filepath.Join(dir, "pos.csv")
	os.WriteFile(file, []byte(csv), 0o644)
	report := filepath.Join(dir, "rejects.csv")
	out, errs, err := kilnCmd(t, "import", "-db", db, "-file", file, "-quiet", "-source", "pos", "-report", report,
		"-event", "Order Completed", "-field", "userId=customer", "-field", "timestamp=when", "-field", "properties.revenue=amount:number")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "2 events (2 new), 3 rejected") {
		t.Errorf("summary: %s", out)
	}
	for _, line := range []string{"line 3:", "line 4:", "line 5:"} {
		if !strings.Contains(errs, line) {
			t.Errorf("output does not report %s\n%s", line, errs)
		}
	}
	rep, _ := os.ReadFile(report)
	if got := strings.Count(string(rep), "\n"); got != 4 {
		t.Errorf("report has %d lines, want header + 3:\n%s", got, rep)
	}
	st, _ := sqlite.Open(db)
	defer st.Close()
	rs, _ := st.ListRejects(context.Background(), store.RejectFilter{})
	if len(rs) != 3 || rs[0].Origin != "import:pos.csv" {
		t.Errorf("rejects log: %+v", rs)
	}
}
