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

// importSales writes csv (customer,when,amount) to pos.csv in dir and
// imports it as orders into source "pos" with kiln import and flags.
func importSales(t *testing.T, dir, csv string, flags ...string) (string, string, error) {
	t.Helper()
	file := filepath.Join(dir, "pos.csv")
	if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	return kilnCmd(t, append([]string{"import", "-file", file, "-quiet", "-source", "pos", "-event", "Order Completed",
		"-field", "userId=customer", "-field", "timestamp=when", "-field", "properties.revenue=amount:number"}, flags...)...)
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
	report := filepath.Join(dir, "rejects.csv")
	out, errs, err := importSales(t, dir, csv, "-db", db, "-report", report)
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

// A row no store can hold (a date in 1600 or 20000, a NUL character) is
// reported with its line number and reason; the import goes on, finishes
// and stores the good rows, on SQLite and on PostgreSQL.
func TestImportRejectsRowsNoStoreCanHold(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{DB: filepath.Join(dir, "k.db")}
			target := []string{"-db", cfg.DB}
			if backend == "postgres" {
				cfg.Postgres = freshPostgres(t)
				target = []string{"-postgres", cfg.Postgres}
			}
			csv := "customer,when,amount\n" +
				"c1,2024-01-02T10:00:00Z,1\n" +
				"c2,1600-01-02T10:00:00Z,2\n" +
				"c3,20000-01-02T10:00:00Z,3\n" +
				"c\x004,2024-01-02T10:00:00Z,4\n" +
				"c5,2024-01-02T10:00:00Z,5\n"
			out, errs, err := importSales(t, dir, csv, target...)
			if err != nil {
				t.Fatalf("import: %v\n%s", err, errs)
			}
			if !strings.Contains(out, "6 lines, 2 events (2 new), 3 rejected") {
				t.Errorf("summary: %s", out)
			}
			for _, want := range []string{"line 3: timestamp: line 3: timestamp 1600-01-02T10:00:00Z is outside the years 1678-2261",
				`line 4: timestamp: line 4: column when: "20000-01-02T10:00:00Z" is not an RFC 3339 time`,
				"line 5: userId: line 5: userId contains a NUL character"} {
				if !strings.Contains(errs, want) {
					t.Errorf("output lacks %q:\n%s", want, errs)
				}
			}
			if strings.Contains(errs+out, "retry") {
				t.Errorf("output says retry:\n%s%s", errs, out)
			}
			st, err := cfg.openStore(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rs, _ := st.ListRejects(context.Background(), store.RejectFilter{})
			if len(rs) != 3 || rs[0].Index != 3 || rs[0].Field != "timestamp" || rs[2].Index != 5 || rs[2].Field != "userId" {
				t.Errorf("rejects log: %+v", rs)
			}
		})
	}
}
