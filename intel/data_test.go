package intel

import (
	"bufio"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dataDirs are where the shared reference data (see its README) may be:
// $KILN_TEST_DATA, the workspace copy, or shared/ beside the repository
// (as in CI). Tests that need a file skip, saying so, when none has it.
func dataDirs() []string {
	var dirs []string
	if d := os.Getenv("KILN_TEST_DATA"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, "/work/shared/data", filepath.Join("..", "..", "shared", "data"))
}

func dataFile(tb testing.TB, name string) string {
	tb.Helper()
	for _, d := range dataDirs() {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	tb.Skipf("reference data file %s not found in %v (set KILN_TEST_DATA): skipping this real-data check", name, dataDirs())
	return ""
}

// readCSV reads a headed CSV into rows of fields keyed by column name.
func readCSV(tb testing.TB, name string) []map[string]string {
	tb.Helper()
	f, err := os.Open(dataFile(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[strings.TrimSpace(h)] = strings.TrimSpace(r[i])
		}
		out = append(out, m)
	}
	return out
}

func num(tb testing.TB, s string) float64 {
	tb.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		tb.Fatalf("bad number %q: %v", s, err)
	}
	return v
}

// cdnowSummary loads cdnow_customers_summary.csv (ID,frequency,recency,T).
func cdnowSummary(tb testing.TB) []Summary {
	var out []Summary
	for _, r := range readCSV(tb, "cdnow_customers_summary.csv") {
		out = append(out, Summary{Customer: r["ID"], Frequency: int(num(tb, r["frequency"])),
			Recency: num(tb, r["recency"]), Age: num(tb, r["T"])})
	}
	return out
}

// cdnowSpend loads cdnow_customers_summary_with_transactions.csv (ID,x,t_x,T,zbar).
func cdnowSpend(tb testing.TB) []Summary {
	var out []Summary
	for _, r := range readCSV(tb, "cdnow_customers_summary_with_transactions.csv") {
		out = append(out, Summary{Customer: r["ID"], Frequency: int(num(tb, r["x"])),
			Recency: num(tb, r["t_x"]), Age: num(tb, r["T"]), Monetary: num(tb, r["zbar"])})
	}
	return out
}

// cdnowTxns parses CDNOW_sample.txt: master id, sample id, YYYYMMDD, CDs, dollars.
func cdnowTxns(tb testing.TB) []Txn {
	f, err := os.Open(dataFile(tb, "CDNOW_sample.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []Txn
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 {
			continue
		}
		d, err := time.Parse("20060102", fs[2])
		if err != nil {
			tb.Fatalf("CDNOW_sample.txt: %v", err)
		}
		out = append(out, Txn{Customer: fs[1], Time: d, Amount: num(tb, fs[4])})
	}
	return out
}

var (
	cdnowCalEnd  = time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC)
	cdnowHoldEnd = time.Date(1998, 6, 30, 0, 0, 0, 0, time.UTC)
)

const week = 7 * 24 * time.Hour
