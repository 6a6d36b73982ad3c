package engine

import (
	"context"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/ingest/bulk"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/journal"
	"github.com/kiln-cdp/kiln/store"
)

// sharedData finds a file of the shared reference data (see its README):
// in $KILN_TEST_DATA, the workspace copy, or shared/ beside the
// repository. The test skips, saying so, when none has it.
func sharedData(t *testing.T, name string) string {
	dirs := []string{"/work/shared/data", filepath.Join("..", "..", "shared", "data")}
	if d := os.Getenv("KILN_TEST_DATA"); d != "" {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Skipf("reference data file %s not found in %v (set KILN_TEST_DATA): skipping this real-data check", name, dirs)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// The CDNOW sample goes in through Kiln's own bulk import; the models the
// engine fits from the stored purchases reproduce the published BG/NBD and
// Gamma-Gamma parameters (Fader, Hardie and Lee 2005).
func TestModelsReproduceCDNOW(t *testing.T) {
	path := sharedData(t, "CDNOW_sample.txt")
	b := setup(t, true)
	// The engine's clock never goes back: the story starts the day after
	// the calibration period.
	b.clock.Store(time.Date(1997, 10, 1, 8, 0, 0, 0, time.UTC).UnixMilli())
	ctx := context.Background()
	j := journal.New(b.st, journal.Options{})
	m, err := bulk.Preset("cdnow")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bulk.ImportFile(ctx, path, j, bulk.Options{Mapping: m, SourceID: "cdnow"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	last, _ := b.st.LastSeq(ctx)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.e.WaitFor(wctx, last); err != nil {
		t.Fatal(err)
	}
	// A segment over a model trait, to see the traits reach definitions.
	if _, err := b.e.ApplyDefinitions(ctx, `segment likely_lost { traits.churn_risk > 0.7 }`, false); err != nil {
		t.Fatal(err)
	}
	rep, err := b.e.RefitModels(ctx, ModelOptions{
		CalibrationEnd: time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC),
		HoldoutEnd:     time.Date(1998, 6, 30, 0, 0, 0, 0, time.UTC),
		Unit:           7 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fit.BGNBD == nil || rep.Fit.Spend == nil {
		t.Fatalf("models not fitted: %+v", rep.Fit.Errors)
	}
	within := func(name string, got, want, tol float64) {
		if math.Abs(got-want)/math.Abs(want) > tol {
			t.Errorf("%s = %.4f, want %.4f within %.1f%%", name, got, want, tol*100)
		}
	}
	bg := rep.Fit.BGNBD.Params
	within("r", bg.R, 0.2426, 0.005)
	within("alpha", bg.Alpha, 4.4136, 0.005)
	within("a", bg.A, 0.7929, 0.005)
	within("b", bg.B, 2.4259, 0.005)
	within("BG/NBD log-likelihood", rep.Fit.BGNBD.LogLikelihood, -9582.43, 0.005)
	gg := rep.Fit.Spend.Params
	within("p", gg.P, 6.25, 0.01)
	within("q", gg.Q, 3.74, 0.01)
	within("gamma", gg.Gamma, 15.44, 0.01)
	if rep.Fit.Customers != 2357 || rep.Fit.Repeaters != 946 {
		t.Errorf("customers %d, repeaters %d; want 2357 and 946", rep.Fit.Customers, rep.Fit.Repeaters)
	}
	if rep.Check == nil || rep.Check.Holdout == nil {
		t.Fatal("no holdout check")
	}
	t.Logf("holdout: %+v", rep.Check.Holdout)
	checkCDNOWSpend(t, b, path, time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC))
	// Every customer has model traits, and the segment over them has members.
	if rep.Scored != 2357 || len(rep.RFM) == 0 {
		t.Errorf("scored %d, rfm %v", rep.Scored, rep.RFM)
	}
	n, _ := b.st.CountMembers(ctx, "likely_lost")
	if n == 0 || n == 2357 {
		t.Errorf("likely_lost has %d members; want some but not all", n)
	}
	// A purchase rescores its customer at once: someone likely lost who
	// buys again is no longer.
	ms, err := b.st.Members(ctx, "likely_lost", "", 1)
	if err != nil || len(ms) != 1 {
		t.Fatal(err)
	}
	lost := ms[0].ProfileID
	user := ""
	for _, id := range b.e.res.Identities(lost) {
		user = id.Value
	}
	b.clock.Store(time.Date(1997, 10, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	b.send(t, user, order(time.Date(1997, 10, 1, 10, 0, 0, 0, time.UTC), 30))
	traits := b.e.ProfileModelTraits(lost)
	_, segs := b.e.ProfileSegments(lost)
	if risk, ok := traits[TraitChurnRisk].(float64); !ok || risk >= 0.7 || slices.Contains(segs, "likely_lost") {
		t.Errorf("after a new purchase: churn_risk %v, segments %v", traits[TraitChurnRisk], segs)
	}
}

// On the demo data, the refit sets the retail and restaurant traits, and
// definitions can use them.
func TestRetailAndRestaurantTraitsOnDemoData(t *testing.T) {
	b := setup(t, true)
	ctx := context.Background()
	b.loadDemo(t, demo.Config{Seed: 2, Customers: 400, Guests: 150, End: b.now()})
	if _, err := b.e.ApplyDefinitions(ctx, `segment gifting { traits.gift_buyer = true }
segment lapsing_guests { traits.lapsed = true }`, false); err != nil {
		t.Fatal(err)
	}
	rep, err := b.e.RefitModels(ctx, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scored < 500 {
		t.Errorf("only %d customers scored", rep.Scored)
	}
	for _, seg := range []string{"gifting", "lapsing_guests"} {
		if n, _ := b.st.CountMembers(ctx, seg); n == 0 {
			t.Errorf("segment %s over model traits has no members", seg)
		}
	}
	checkTraitsAsFormerRefit(t, b, rep.CalibrationEnd)
}

// checkTraitsAsFormerRefit recomputes the retail and restaurant traits the
// way the refit did before it streamed the log into compact histories
// (a copy of every history event per customer, then intel.FromEvents) and
// compares them with those the refit set.
func checkTraitsAsFormerRefit(t *testing.T, b *bundle, asOf time.Time) {
	t.Helper()
	ctx := context.Background()
	histEvents := map[string][]*kiln.Event{}
	upTo, _ := b.st.LastSeq(ctx)
	err := b.st.ScanLog(ctx, 0, upTo, func(evs []kiln.Event) error {
		b.e.mu.Lock()
		defer b.e.mu.Unlock()
		for i := range evs {
			ev := &evs[i]
			if !historyEvent(ev) || ev.Timestamp.After(asOf) {
				continue
			}
			if pid, ok := b.e.res.ProfileOf(kiln.ParseIdentifier(ev.Anchor)); ok {
				kept := *ev
				histEvents[pid] = append(histEvents[pid], &kept)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var hs []intel.CustomerHistory
	for _, pid := range slices.Sorted(maps.Keys(histEvents)) {
		hs = append(hs, intel.FromEvents(pid, histEvents[pid]))
	}
	topts := intel.DefaultTraitOptions()
	topts.Zone = b.e.loc
	pop := intel.LearnPopulationOptions(hs, asOf, topts)
	n := 0
	for _, h := range hs {
		want := intel.CustomerTraits(h, pop, asOf)
		got := b.e.ProfileModelTraits(h.Customer)
		for _, k := range modelTraits {
			delete(got, k)
		}
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		if !maps.Equal(got, want) {
			t.Fatalf("customer %s: the refit set %v, the former refit %v", h.Customer, got, want)
		}
		n++
	}
	if n < 500 {
		t.Errorf("only %d customers' traits compared", n)
	}
}

// checkCDNOWSpend compares each customer's spend as the models hold it
// with an independent reading of the raw file: no order is dropped, and
// same-day orders are summed into their day (51 of the 946 repeat buyers
// have two orders on one repeat day).
func checkCDNOWSpend(t *testing.T, b *bundle, path string, calEnd time.Time) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type day struct {
		dollars float64
		orders  int
	}
	byCust := map[string]map[string]day{} // customer -> YYYYMMDD -> that day
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 || f[2] > calEnd.Format("20060102") {
			continue
		}
		v, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			t.Fatal(err)
		}
		if byCust[f[0]] == nil {
			byCust[f[0]] = map[string]day{}
		}
		d := byCust[f[0]][f[2]]
		byCust[f[0]][f[2]] = day{d.dollars + v, d.orders + 1}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	b.e.mu.Lock()
	defer b.e.mu.Unlock()
	repeaters, sameDay := 0, 0
	for cust, days := range byCust {
		dates := slices.Sorted(maps.Keys(days))
		total, repeat, twice := 0.0, 0.0, false
		for i, d := range dates {
			total += days[d].dollars
			if i > 0 {
				repeat += days[d].dollars
				twice = twice || days[d].orders > 1
			}
		}
		pid, ok := b.e.res.ProfileOf(kiln.Identifier{Kind: kiln.UserID, Value: cust})
		p := b.e.models.cust[pid]
		if !ok || p == nil {
			t.Fatalf("customer %s: no purchases in the models", cust)
		}
		s, ok := p.summary(calEnd, 7*24*time.Hour)
		if !ok || s.Frequency != len(dates)-1 || !near(s.Total, total) {
			t.Fatalf("customer %s: x %d, total %.2f; the raw file has %d repeat days, %.2f", cust, s.Frequency, s.Total, len(dates)-1, total)
		}
		if len(dates) == 1 {
			continue
		}
		repeaters++
		if twice {
			sameDay++
		}
		if want := repeat / float64(len(dates)-1); !near(s.Monetary, want) {
			t.Fatalf("customer %s: mean repeat-day spend %.4f, the raw file's %.4f", cust, s.Monetary, want)
		}
	}
	if repeaters != 946 || sameDay != 51 {
		t.Errorf("the raw file has %d repeat buyers, %d with two orders on a repeat day; want 946 and 51", repeaters, sameDay)
	}
}

// Model traits are durable state: a segment over them created after the
// refit has its members at once; an unrelated edit, a restart and a
// refit that changes nothing record no transition of it; and a refit
// publishes its changes as one batch with reason model_refit.
func TestModelTraitsSurviveEditsRestartsAndRefits(t *testing.T) {
	b := setup(t, true)
	ctx := context.Background()
	b.loadDemo(t, demo.Config{Seed: 5, Customers: 300, Guests: 150, End: b.now()})
	if _, err := b.e.RefitModels(ctx, ModelOptions{}); err != nil {
		t.Fatal(err)
	}
	// Created after the refit: the rebuild sets the stored model traits.
	if _, err := b.e.ApplyDefinitions(ctx, `segment gifting { traits.gift_buyer = true }
segment lapsing_guests { traits.lapsed = true }`, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, seg := range []string{"gifting", "lapsing_guests"} {
		n, _ := b.st.CountMembers(ctx, seg)
		if n == 0 {
			t.Fatalf("segment %s created after the refit has no members", seg)
		}
		want[seg] = n
	}
	count := func() int {
		n := 0
		for after := int64(0); ; {
			ts, err := b.st.Transitions(ctx, store.TransitionQuery{After: after, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) == 0 {
				return n
			}
			n += len(ts)
			after = ts[len(ts)-1].ID
		}
	}
	before := count()
	if _, err := b.e.ApplyDefinitions(ctx, `segment unrelated { count of "Page Viewed" in last 7 days >= 1 }`, false); err != nil {
		t.Fatal(err)
	}
	unrelated, _ := b.st.CountMembers(ctx, "unrelated")
	// A restart on the same store.
	b.stop()
	e, err := New(Config{Store: b.st, Logger: b.e.log, Now: b.now, Poll: 20 * time.Millisecond, Refit: -1})
	if err != nil {
		t.Fatal(err)
	}
	b.e = e
	b.start(t)
	if got := count(); got != before+int(unrelated) {
		t.Errorf("after an unrelated edit and a restart: %d transitions, want %d (the edit's %d entries only)", got, before+int(unrelated), unrelated)
	}
	for seg, n := range want {
		if got, _ := b.st.CountMembers(ctx, seg); got != n {
			t.Errorf("%s has %d members after the restart, want %d", seg, got, n)
		}
	}
	if traits := e.ProfileModelTraits(firstMember(t, b, "gifting")); traits["gift_buyer"] != true {
		t.Errorf("model traits after the restart: %v", traits)
	}
	// The same refit again changes no trait across a condition.
	before = count()
	if _, err := e.RefitModels(ctx, ModelOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != before {
		t.Errorf("a refit over the same data recorded %d transitions", got-before)
	}
	// A later refit (a year on, nobody bought) moves traits: its changes
	// carry reason model_refit.
	b.clock.Add((365 * 24 * time.Hour).Milliseconds())
	if _, err := e.RefitModels(ctx, ModelOptions{}); err != nil {
		t.Fatal(err)
	}
	ts, _ := b.st.Transitions(ctx, store.TransitionQuery{After: 0, Limit: 100000})
	refits := 0
	for _, tr := range ts[before:] {
		if tr.Reason == kiln.ReasonModelRefit {
			refits++
		} else if tr.Segment == "gifting" || tr.Segment == "lapsing_guests" {
			t.Errorf("a model trait segment changed for reason %s: %+v", tr.Reason, tr)
		}
	}
	if refits == 0 {
		t.Error("a refit a year later moved no profile across lapsed or gift_buyer")
	}
}

func firstMember(t *testing.T, b *bundle, seg string) string {
	t.Helper()
	ms, err := b.st.Members(context.Background(), seg, "", 1)
	if err != nil || len(ms) == 0 {
		t.Fatalf("no member of %s: %v", seg, err)
	}
	return ms[0].ProfileID
}

// loadDemo appends the demo's events and waits until they are processed.
func (b *bundle) loadDemo(t *testing.T, cfg demo.Config) {
	t.Helper()
	ctx := context.Background()
	var evs []kiln.Event
	if _, err := demo.Generate(cfg, func(e kiln.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(evs); i += 5000 {
		if _, err := b.st.Append(ctx, store.Batch{Events: evs[i:min(i+5000, len(evs))]}); err != nil {
			t.Fatal(err)
		}
	}
	last, _ := b.st.LastSeq(ctx)
	if err := b.e.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
}
