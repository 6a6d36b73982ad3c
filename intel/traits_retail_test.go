package intel

import (
	"compress/gzip"
	"encoding/csv"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// onlineRetailHistories reads online_retail.csv.gz (a UK gift wholesaler's
// 2010-2011 invoices) into one history per known customer: one purchase per
// invoice, a line per row. Cancellations (invoices "C…"), adjustments ("A…")
// and rows without a positive quantity and price are left out.
func onlineRetailHistories(tb testing.TB) []CustomerHistory {
	f, err := os.Open(dataFile(tb, "online_retail.csv.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	r := csv.NewReader(zr)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		tb.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	type inv struct {
		cust string
		p    Purchase
	}
	invs := map[string]*inv{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		no, cust := rec[col["InvoiceNo"]], rec[col["CustomerID"]]
		if cust == "" || strings.HasPrefix(no, "C") || strings.HasPrefix(no, "A") {
			continue
		}
		q, err1 := strconv.ParseFloat(rec[col["Quantity"]], 64)
		price, err2 := strconv.ParseFloat(rec[col["UnitPrice"]], 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("online_retail.csv.gz line %d: quantity %q or price %q is not a number", line, rec[col["Quantity"]], rec[col["UnitPrice"]])
		}
		if q <= 0 || price <= 0 {
			continue
		}
		v := invs[no]
		if v == nil {
			at, err := time.Parse(time.DateTime, rec[col["InvoiceDate"]])
			if err != nil {
				tb.Fatalf("online_retail.csv.gz line %d: %v", line, err)
			}
			v = &inv{cust: cust, p: Purchase{Time: at, OrderID: no}}
			invs[no] = v
		}
		v.p.Lines = append(v.p.Lines, Line{SKU: rec[col["StockCode"]], Name: rec[col["Description"]], Quantity: q, Price: price})
		v.p.Amount += q * price
	}
	by := map[string][]Purchase{}
	for _, v := range invs {
		by[v.cust] = append(by[v.cust], v.p)
	}
	hs := make([]CustomerHistory, 0, len(by))
	for c, ps := range by {
		slices.SortFunc(ps, func(a, b Purchase) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.OrderID, b.OrderID)
		})
		hs = append(hs, CustomerHistory{Customer: c, Purchases: ps})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Customer < hs[j].Customer })
	return hs
}

func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return quantile(slices.Clone(xs), q)
}

// On the UK gift wholesaler's log: many customers are shops buying by the
// dozen, so bulk buying must flag a sizeable share, and those flagged must
// spend far more per order; intervals per StockCode must be learned from
// repeat purchases with plausible medians, and the due dates must point at
// when customers actually re-order.
func TestOnlineRetailTraits(t *testing.T) {
	hs := onlineRetailHistories(t)
	end := time.Date(2011, 12, 9, 23, 59, 59, 0, time.UTC)
	pop := LearnPopulation(hs, end)
	t.Logf("%d customers, %d lines; line quantity p%.0f %.0f, bulk from %.0f", len(hs), pop.ShopLines, 100*pop.Options.BulkPercentile, pop.LineQuantityPercentile, pop.BulkQuantity)

	var bulk, other []float64 // mean order value
	for _, h := range hs {
		tr := CustomerTraits(h, pop, end)
		sum := 0.0
		for _, p := range h.Purchases {
			sum += p.Amount
		}
		aov := sum / float64(len(h.Purchases))
		if tr[TraitBusinessBuyer] == true {
			if !strings.Contains(tr[TraitBusinessSignals].(string), "bulk") {
				t.Fatalf("%s: business buyer without company, VAT or email on file must be a bulk buyer: %v", h.Customer, tr)
			}
			bulk = append(bulk, aov)
		} else {
			other = append(other, aov)
		}
	}
	share := float64(len(bulk)) / float64(len(hs))
	t.Logf("business buyers by bulk quantity: %d of %d (%.1f%%); median order value %.0f against %.0f for the rest",
		len(bulk), len(hs), 100*share, pct(bulk, 0.5), pct(other, 0.5))
	if share < 0.1 || share > 0.6 {
		t.Errorf("bulk buying flags %.1f%% of the wholesaler's customers: want a sizeable share, not nobody or everybody", 100*share)
	}
	if pct(bulk, 0.5) < 1.3*pct(other, 0.5) {
		t.Errorf("bulk buyers' median order value %.0f is not well above the others' %.0f", pct(bulk, 0.5), pct(other, 0.5))
	}

	var medians []float64
	repl := 0
	for _, iv := range pop.SKUIntervals {
		medians = append(medians, iv.Median)
		if iv.Replenished {
			repl++
		}
	}
	t.Logf("SKU intervals learned for %d StockCodes (%d replenished): median interval p10 %.0f, p50 %.0f, p90 %.0f days",
		len(medians), repl, pct(medians, 0.1), pct(medians, 0.5), pct(medians, 0.9))
	for _, sku := range []string{"85123A", "22423", "85099B", "47566", "84879"} {
		if iv, ok := pop.SKUIntervals[sku]; ok {
			t.Logf("  %s: median %.1f days, %d of %d buyers bought again (%d intervals)", sku, iv.Median, iv.Repeaters, iv.Buyers, iv.Intervals)
		}
	}
	if len(medians) < 200 || pct(medians, 0.5) < 14 || pct(medians, 0.5) > 120 {
		t.Errorf("%d SKU intervals, median %.0f days: want hundreds, with medians of weeks to a few months", len(medians), pct(medians, 0.5))
	}

	// Holdout: three months before the end, a customer's SKUs due in the
	// next 30 days must be re-ordered in the following 60 days more often
	// than their SKUs due further off.
	asOf := end.AddDate(0, -3, 0)
	popThen := LearnPopulation(hs, asOf)
	var soonN, soonHit, laterN, laterHit, ownN, ownHit int
	for _, h := range hs {
		bought := map[string]bool{}
		for _, p := range h.Purchases {
			if p.Time.After(asOf) && !p.Time.After(asOf.AddDate(0, 0, 60)) {
				for _, l := range p.Lines {
					bought[l.SKU] = true
				}
			}
		}
		for _, d := range ReplenishmentDue(h, popThen, asOf) {
			if d.Level != LevelSKU {
				continue
			}
			due, _ := time.Parse(time.DateOnly, d.Due)
			switch days := due.Sub(asOf).Hours() / 24; {
			case days >= 0 && days <= 30:
				soonN++
				if bought[d.Item] {
					soonHit++
				}
				if d.Own {
					ownN++
					if bought[d.Item] {
						ownHit++
					}
				}
			case days > 60:
				laterN++
				if bought[d.Item] {
					laterHit++
				}
			}
		}
	}
	rs, rl := float64(soonHit)/float64(max(1, soonN)), float64(laterHit)/float64(max(1, laterN))
	t.Logf("holdout from %s: SKUs due within 30 days: %d, %.1f%% re-ordered within 60 days (%d on the customer's own interval: %.1f%%); due after 60 days: %d, %.1f%%",
		asOf.Format(time.DateOnly), soonN, 100*rs, ownN, 100*float64(ownHit)/float64(max(1, ownN)), laterN, 100*rl)
	if soonN < 1000 || laterN < 100 || rs <= 1.25*rl {
		t.Errorf("due dates do not point at re-orders: %.2f (n=%d) against %.2f (n=%d)", rs, soonN, rl, laterN)
	}
}
