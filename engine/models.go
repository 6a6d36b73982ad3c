package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/store"
)

// Customer intelligence: the models of package intel, fitted on the
// purchases in the log and kept current. A refit (on start, daily, or on
// demand) summarises every customer's purchases, fits BG/NBD and
// Gamma-Gamma, scores RFM quintiles and k-means clusters over the whole
// base, and sets the results as profile traits that segment definitions
// read like any other (traits.churn_risk > 0.7, traits.rfm_segment =
// "At Risk"). Between refits each purchase rescores its customer with the
// fitted parameters; the population-relative scores (RFM, clusters) move
// only at refits.

// Model traits set on profiles.
const (
	TraitProbAlive      = "p_alive"              // BG/NBD probability the customer is still active
	TraitChurnRisk      = "churn_risk"           // 1 - p_alive
	TraitExpectedOrders = "expected_orders_90d"  // BG/NBD expected purchase days in the next 90 days
	TraitExpectedValue  = "expected_order_value" // Gamma-Gamma expected spend per purchase
	TraitCLV            = "clv_12m"              // discounted 12-month value (1% a month)
	TraitNextOrder      = "next_order_date"      // median next purchase date if active, YYYY-MM-DD
	TraitRFMScore       = "rfm_score"            // "R F M" quintiles, e.g. "545"
	TraitRFMSegment     = "rfm_segment"          // Champions, Loyal, At Risk, ...
	TraitCluster        = "cluster"              // k-means cluster, in plain words
)

// modelTraits lists them, for showing with the computed traits.
var modelTraits = []string{TraitProbAlive, TraitChurnRisk, TraitExpectedOrders, TraitExpectedValue, TraitCLV,
	TraitNextOrder, TraitRFMScore, TraitRFMSegment, TraitCluster}

// PurchaseEvents are the event names that count as purchases, and the
// properties read as their amount, in order.
var (
	PurchaseEvents  = []string{kiln.OrderCompleted, kiln.VisitCompleted}
	PurchaseAmounts = []string{"revenue", "total", "spend"}
)

// ModelOptions configure a refit.
type ModelOptions struct {
	// CalibrationEnd is the end of the history used (default now).
	CalibrationEnd time.Time
	// Unit is the models' time unit (default a week).
	Unit time.Duration
	// Holdout is the length of the holdout check in the report: the models
	// are also fitted on the history up to CalibrationEnd-Holdout and their
	// predictions compared with what customers did in the holdout
	// (default a quarter of the history, at least 4 weeks; negative: none).
	Holdout time.Duration
	// HoldoutEnd, if set, ends the holdout check instead of CalibrationEnd
	// (for a fit on a fixed calibration period, as the published CDNOW
	// analyses use).
	HoldoutEnd time.Time
	// MinRepeaters below which the models say the data is too thin (default intel's).
	MinRepeaters int
}

// ModelReport is what `kiln models report` shows.
type ModelReport struct {
	FittedAt       time.Time       `json:"fittedAt"`
	CalibrationEnd time.Time       `json:"calibrationEnd"`
	Unit           string          `json:"unit"`
	Purchases      int             `json:"purchases"`
	Fit            intel.Report    `json:"fit"`             // on the whole history: the parameters in use
	Check          *intel.Report   `json:"check,omitempty"` // fitted before the holdout, checked against it
	HoldoutFrom    time.Time       `json:"holdoutFrom,omitzero"`
	RFM            map[string]int  `json:"rfm"` // customers per named group
	Clusters       []intel.Cluster `json:"clusters,omitempty"`
	Scored         int             `json:"scored"` // customers with model traits
	Took           string          `json:"took"`
}

type models struct {
	keys   map[string]bool           // every trait name the models set
	traits map[string]map[string]any // per profile, for showing them (with or without definitions)
	bg     *intel.BGNBD
	gg     *intel.GammaGamma
	unit   time.Duration
	report *ModelReport
	cust   map[string]*purchases // each customer's orders (purchases.go), to rescore them
}

// historyEvent reports whether the retail and restaurant traits read ev.
func historyEvent(ev *kiln.Event) bool {
	if ev.Type == kiln.Identify {
		return true
	}
	switch ev.Name {
	case kiln.OrderCompleted, kiln.VisitCompleted, kiln.FeedbackGiven, kiln.EventRSVPed, kiln.LoyaltyMilestone,
		kiln.OrderRefunded, kiln.OrderCancelled:
		return true
	}
	return false
}

// scoreTraits computes a customer's model traits with fitted models.
func (m *models) scoreTraits(p *purchases, asOf time.Time) map[string]any {
	out := map[string]any{}
	if m.bg == nil {
		return out
	}
	s, ok := p.summary(asOf, m.unit)
	if !ok {
		return out
	}
	pa := m.bg.ProbAlive(s)
	out[TraitProbAlive] = round4(pa)
	out[TraitChurnRisk] = round4(1 - pa)
	out[TraitExpectedOrders] = round4(m.bg.ConditionalExpectedPurchases(s, 90*float64(24*time.Hour)/float64(m.unit)))
	if next := m.bg.NextPurchaseDate(s, asOf, m.unit); !next.IsZero() {
		out[TraitNextOrder] = next.Format(time.DateOnly)
	}
	if m.gg != nil && s.Frequency > 0 {
		ev := m.gg.ExpectedSpend(s)
		if !math.IsNaN(ev) && !math.IsInf(ev, 0) {
			out[TraitExpectedValue] = round2(ev)
			clv := intel.CLV(*m.bg, *m.gg, s, clvOptions(m.unit))
			if !math.IsNaN(clv) && !math.IsInf(clv, 0) {
				out[TraitCLV] = round2(clv)
			}
		}
	}
	return out
}

// customerModelTraits are the model traits computed per customer (RFM
// and clusters are relative to the whole base).
var customerModelTraits = []string{TraitProbAlive, TraitChurnRisk, TraitExpectedOrders, TraitExpectedValue, TraitCLV, TraitNextOrder}

// rescoreTraits is scoreTraits with nil for each per-customer trait it
// could not compute, so that a rescore takes away what a cancelled or
// refunded order had set (a nil trait reads as absent).
func (m *models) rescoreTraits(p *purchases, asOf time.Time) map[string]any {
	t := m.scoreTraits(p, asOf)
	for _, k := range customerModelTraits {
		if _, ok := t[k]; !ok {
			t[k] = nil
		}
	}
	return t
}

func clvOptions(unit time.Duration) intel.CLVOptions {
	return intel.CLVOptions{Periods: 12, PeriodLength: float64(30.4375*24*float64(time.Hour)) / float64(unit), DiscountRate: 0.01}
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// ModelReport returns the last refit's report, or nil.
func (e *Engine) ModelReport() *ModelReport {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.models == nil {
		return nil
	}
	return e.models.report
}

// RefitModels summarises every customer's purchases from the log, fits
// the models, scores everyone and sets their model traits (recording any
// segment changes that follow, with reason "recompute").
func (e *Engine) RefitModels(ctx context.Context, o ModelOptions) (*ModelReport, error) {
	start := time.Now()
	if o.CalibrationEnd.IsZero() {
		o.CalibrationEnd = e.cfg.Now()
	}
	if o.Unit <= 0 {
		o.Unit = 7 * 24 * time.Hour
	}
	// Gather purchases, resolving profiles a chunk at a time so event
	// processing is held up only briefly. Purchases after the calibration
	// end are read only for a holdout check that ends later (a refund or
	// cancellation read then also applies to a calibration-period order).
	readUpTo := o.CalibrationEnd
	if o.HoldoutEnd.After(readUpTo) {
		readUpTo = o.HoldoutEnd
	}
	led := &ledger{cust: map[string]*purchases{}}
	hists := intel.NewHistories() // for the retail and restaurant traits: compact, not copies of events
	upTo := e.processed.Load()
	err := e.st.ScanLog(ctx, 0, upTo, func(evs []kiln.Event) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i := range evs {
			ev := &evs[i]
			hist := historyEvent(ev) && !ev.Timestamp.After(o.CalibrationEnd)
			en, purchase := readPurchase(ev)
			purchase = purchase && !ev.Timestamp.After(readUpTo)
			if !hist && !purchase {
				continue
			}
			pid, found := e.res.ProfileOf(kiln.ParseIdentifier(ev.Anchor))
			if !found {
				continue
			}
			if hist {
				hists.Add(pid, ev)
			}
			if purchase {
				led.add(pid, ev.Timestamp, en)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading purchases: %w", err)
	}
	rep := &ModelReport{FittedAt: e.cfg.Now().UTC(), CalibrationEnd: o.CalibrationEnd.UTC(), Unit: o.Unit.String(), Purchases: led.orders, RFM: map[string]int{}}
	fitOpts := intel.FitOptions{MinRepeaters: o.MinRepeaters}
	sums := led.summaries(o.CalibrationEnd, time.Time{}, o.Unit)
	rep.Fit = intel.BuildReport(sums, fitOpts)
	// The holdout check: fit before the holdout, compare with it.
	if o.Holdout >= 0 && led.orders > 0 {
		holdEnd, holdStart := o.CalibrationEnd, time.Time{}
		if !o.HoldoutEnd.IsZero() {
			holdEnd, holdStart = o.HoldoutEnd, o.CalibrationEnd
		} else {
			h := o.Holdout
			if h == 0 {
				h = max(4*7*24*time.Hour, o.CalibrationEnd.Sub(led.firstSeen)/4)
			}
			holdStart = o.CalibrationEnd.Add(-h)
		}
		if intel.DayOf(holdEnd) >= intel.DayOf(holdStart) {
			check := intel.BuildReport(led.summaries(holdStart, holdEnd, o.Unit), fitOpts)
			rep.Check, rep.HoldoutFrom = &check, holdStart.UTC()
		}
	}
	calDay := intel.DayOf(o.CalibrationEnd)
	cust := led.cust
	for _, p := range cust {
		p.dropAfter(calDay) // rescoring goes on from the calibration end
	}
	m := &models{unit: o.Unit, report: rep, cust: cust}
	if rep.Fit.BGNBD != nil {
		bg := rep.Fit.BGNBD.Params
		m.bg = &bg
	}
	if rep.Fit.Spend != nil {
		gg := rep.Fit.Spend.Params
		m.gg = &gg
	}

	// Population-relative scores: RFM quintiles and clusters, over the
	// customers with a purchase day (sums, by id).
	ids := make([]string, len(sums))
	rfmIn := make([]intel.RFMInput, len(sums))
	clIn := make([]intel.ClusterInput, len(sums))
	for i, s := range sums {
		ids[i] = s.Customer
		rfmIn[i] = cust[s.Customer].rfm(s, calDay)
		clIn[i] = intel.ClusterInput{Recency: rfmIn[i].Recency, Frequency: rfmIn[i].Frequency, Monetary: max(0, s.Total)}
	}
	traits := make(map[string]map[string]any, len(ids))
	for _, id := range ids {
		traits[id] = m.scoreTraits(cust[id], o.CalibrationEnd)
	}
	// Retail and restaurant traits, learned across the whole base. Each
	// customer's history is built in turn from the compact ones.
	topts := intel.DefaultTraitOptions()
	topts.Zone = e.loc // days, gifting seasons and due dates in the workspace's time zone
	pop := intel.LearnPopulationSeq(hists.All(), o.CalibrationEnd, topts)
	m.keys = map[string]bool{}
	for _, k := range modelTraits {
		m.keys[k] = true
	}
	for h := range hists.All() {
		t := traits[h.Customer]
		if t == nil {
			t = map[string]any{}
			traits[h.Customer] = t
			ids = append(ids, h.Customer)
		}
		for k, v := range intel.CustomerTraits(*h, pop, o.CalibrationEnd) {
			t[k] = v
			m.keys[k] = true
		}
	}
	if len(ids) > 0 {
		cfg := intel.DefaultRFMConfig()
		if len(e.cfg.RFM.Segments) > 0 {
			cfg = e.cfg.RFM
		}
		if scores, err := intel.ScoreRFM(rfmIn, cfg); err != nil {
			rep.Fit.Warnings = append(rep.Fit.Warnings, "RFM: "+err.Error())
		} else {
			for i, s := range scores {
				traits[ids[i]][TraitRFMScore] = fmt.Sprintf("%d%d%d", s.R, s.F, s.M)
				traits[ids[i]][TraitRFMSegment] = s.Segment
				rep.RFM[s.Segment]++
			}
		}
	}
	if len(ids) >= 20 {
		if cl, err := intel.ClusterCustomers(clIn, intel.ClusterOptions{Seed: 1}); err == nil {
			rep.Clusters = cl.Clusters
			for i, a := range cl.Assignments {
				traits[ids[i]][TraitCluster] = cl.Clusters[a].Description
			}
		} else {
			rep.Fit.Warnings = append(rep.Fit.Warnings, "clustering: "+err.Error())
		}
	}
	rep.Scored = len(traits)
	m.traits = traits

	// Install: set the traits on live states and record what changes, in
	// one write with the traits and the fitted models, so a restart finds
	// them as they were installed.
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.evalNow()
	if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
		return nil, err
	}
	var res store.Resolution
	saved, err := m.save()
	if err != nil {
		return nil, err
	}
	res.Blobs = []store.Blob{{Name: modelsBlob, Data: saved}}
	res.Checkpoints = clockAt(now.UnixMilli())
	var old map[string]map[string]any
	if e.models != nil {
		old = e.models.traits
	}
	s := e.segs
	for _, id := range unionKeys(old, traits) {
		t := traits[id]
		if reflect.DeepEqual(old[id], t) {
			continue
		}
		res.ModelTraits = append(res.ModelTraits, store.ModelTraits{ProfileID: id, Traits: t})
		if s == nil || s.prog == nil {
			continue
		}
		ps := s.state(id)
		replaceTraits(ps, old[id], t)
		r := s.prog.ApplyProfile(ps.st, &ps.prof, now)
		res.Transitions = s.transitions(id, r, now, kiln.ReasonModelRefit, 0, res.Transitions)
		s.schedule(id, ps, r.NextDue)
		res.Transitions = s.rerank(id, now, res.Transitions)
	}
	if err := e.write(ctx, &res); err != nil {
		e.segsDirty = true
		return nil, fmt.Errorf("recording the refitted models and the segment changes they cause: %w", err)
	}
	e.models = m
	e.moveClock(now)
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	e.log.Info("customer models refitted", "customers", len(ids), "purchases", rep.Purchases, "verdict", rep.Fit.Verdict,
		"traits changed", len(res.ModelTraits), "transitions", len(res.Transitions), "took", rep.Took)
	return rep, nil
}

// replaceTraits sets a profile's model traits to t, removing those of old
// that t no longer has.
func replaceTraits(ps *pstate, old, t map[string]any) {
	for k := range old {
		if _, ok := t[k]; !ok {
			delete(ps.prof.Traits, k)
		}
	}
	setTraits(ps, t)
}

func setTraits(ps *pstate, t map[string]any) {
	if ps.prof.Traits == nil {
		ps.prof.Traits = make(map[string]any, len(t))
	}
	for k, v := range t {
		ps.prof.Traits[k] = v
	}
}

// rescore updates a customer's purchase history with a new purchase,
// refund or cancellation and,
// if the models are fitted, their model traits (not RFM or cluster, which
// are relative to the whole base). It returns the profile's new model
// traits when they changed, to be stored with the batch, or nil.
func (e *Engine) rescore(pid string, ps *pstate, ev *kiln.Event, now time.Time) map[string]any {
	m := e.models
	if m == nil {
		return nil
	}
	if !m.record(pid, ev) || m.bg == nil {
		return nil
	}
	old := m.traits[pid]
	t := m.rescoreProfile(pid, now)
	replaceTraits(ps, old, t)
	return t
}

// rescoreProfile scores pid's purchases with the fitted models and
// returns its model traits with the new scores; a score it cannot compute
// any more (every order cancelled, say) is taken away.
func (m *models) rescoreProfile(pid string, now time.Time) map[string]any {
	cur := maps.Clone(m.traits[pid])
	if cur == nil {
		cur = map[string]any{}
	}
	for k, v := range m.rescoreTraits(m.purchasesOf(pid), now) {
		if v == nil {
			delete(cur, k)
		} else {
			cur[k] = v
		}
	}
	m.traits[pid] = cur
	return cur
}

// record applies ev to pid's purchases if it is a purchase, a refund or a
// cancellation, and reports whether it was.
func (m *models) record(pid string, ev *kiln.Event) bool {
	en, ok := readPurchase(ev)
	if !ok {
		return false
	}
	m.purchasesOf(pid).apply(en)
	return true
}

// forgetModels drops what the models know of a profile merged away.
func (e *Engine) forgetModels(pid string) {
	if m := e.models; m != nil {
		delete(m.traits, pid)
		delete(m.cust, pid)
	}
}

// recountPurchases rebuilds a profile's purchase history from its events
// (after a merge or an unmerge) and rescores it; it reports whether its
// model traits moved.
func (e *Engine) recountPurchases(pid string, evs []kiln.Event, now time.Time) bool {
	m := e.models
	if m == nil {
		return false
	}
	delete(m.cust, pid)
	slices.SortFunc(evs, func(a, b kiln.Event) int { return int(a.Seq - b.Seq) })
	var last *kiln.Event
	for i := range evs {
		if m.record(pid, &evs[i]) {
			last = &evs[i]
		}
	}
	if last == nil || m.bg == nil {
		return false
	}
	m.rescoreProfile(pid, now)
	return true
}

// modelTraitChanges appends the stored form of the model traits of pids
// (once each) to out.
func (e *Engine) modelTraitChanges(pids []string, out []store.ModelTraits) []store.ModelTraits {
	if e.models == nil || len(pids) == 0 {
		return out
	}
	seen := make(map[string]bool, len(pids))
	for _, pid := range pids {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, store.ModelTraits{ProfileID: pid, Traits: e.models.traits[pid]})
		}
	}
	return out
}

// modelsBlob names the stored fitted models.
const modelsBlob = "models"

// savedModels is what a refit stores besides the traits: enough to
// rescore customers after a restart without refitting.
type savedModels struct {
	Unit   time.Duration     `json:"unit"`
	BG     *intel.BGNBD      `json:"bg,omitempty"`
	GG     *intel.GammaGamma `json:"gg,omitempty"`
	Keys   []string          `json:"keys"`
	Report *ModelReport      `json:"report"`
}

func (m *models) save() ([]byte, error) {
	b, err := json.Marshal(savedModels{Unit: m.unit, BG: m.bg, GG: m.gg, Keys: slices.Sorted(maps.Keys(m.keys)), Report: m.report})
	if err != nil {
		return nil, fmt.Errorf("encoding the fitted models: %w", err)
	}
	return b, nil
}

// loadModels reads the models and traits the last refit stored (with the
// rescores since), or nil if there are none. Purchase
// histories are rebuilt with the segment state (see rebuild).
//
// The traits come from snapshot h when it is usable and was taken with
// these models (fromSnap: catchUpSnapshot then brings them up to the log),
// else from the store's table.
func (e *Engine) loadModels(ctx context.Context, h snapshotHeader, usable bool) (m *models, fromSnap bool, err error) {
	b, err := e.st.GetBlob(ctx, modelsBlob)
	if err != nil || b == nil {
		return nil, false, err
	}
	var sm savedModels
	if err := json.Unmarshal(b, &sm); err != nil {
		return nil, false, fmt.Errorf("reading the stored customer models: %w", err)
	}
	m = &models{unit: sm.Unit, bg: sm.BG, gg: sm.GG, report: sm.Report, keys: map[string]bool{},
		traits: map[string]map[string]any{}, cust: map[string]*purchases{}}
	for _, k := range sm.Keys {
		m.keys[k] = true
	}
	if usable && h.ModelTraits && sm.Report != nil && h.Models.Equal(sm.Report.FittedAt) {
		t, err := e.snapshotModelTraits(ctx, h)
		if err != nil {
			e.log.Warn("the model traits in the engine snapshot cannot be read; loading them from the store", "generation", h.Gen, "err", err)
		} else {
			m.traits = t
			return m, true, nil
		}
	}
	start := time.Now()
	err = e.st.ScanModelTraits(ctx, func(pid string, t map[string]any) error {
		m.traits[pid] = t
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	e.log.Info("model traits loaded", "profiles", len(m.traits), "took", time.Since(start).Round(time.Millisecond))
	return m, false, nil
}
