package metrics

import "github.com/prometheus/client_golang/prometheus"

// Delivery is the outbox's collectors, each by destination (its name: it
// is unique and what an operator knows it by).
type Delivery struct {
	Pending     *prometheus.GaugeVec     // pending items in the outbox, due or not
	Due         *prometheus.GaugeVec     // pending items due now
	OldestAge   *prometheus.GaugeVec     // seconds since the oldest due pending item was due
	Queued      *prometheus.GaugeVec     // items this process holds for the destination (leased, waiting or in flight)
	InFlight    *prometheus.GaugeVec     // calls running now
	Outcomes    *prometheus.CounterVec   // by outcome: sent, failed, retried, skipped, handed_back
	BatchSize   *prometheus.HistogramVec // changes per call
	CallSeconds *prometheus.HistogramVec // by result: ok, error, timeout
	LastSuccess *prometheus.GaugeVec     // Unix time of the last accepted call
	Healthy     *prometheus.GaugeVec     // 1 when the destination is ok, 0 when failing or behind
	// Reconciles counts full reconciliations of a segment, by mode
	// (listed, reasserted) and result (ok, error).
	Reconciles *prometheus.CounterVec
	// ReconcileChanges counts their outcome by change: added, removed
	// (queued), unchanged, unknown, unmanaged, corrected.
	ReconcileChanges *prometheus.CounterVec
}

func newDelivery(r *prometheus.Registry) *Delivery {
	dest := []string{"destination"}
	d := &Delivery{
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_queue_depth", Help: "Pending outbox items of the destination, due now or later (retries, delays).",
		}, dest),
		Due: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_due", Help: "Pending outbox items of the destination that are due now.",
		}, dest),
		OldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_oldest_pending_seconds", Help: "Seconds since the oldest pending item of the destination was due (0: none).",
		}, dest),
		Queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_held", Help: "Items this process holds for the destination: leased, waiting for a worker or in flight.",
		}, dest),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_in_flight", Help: "Calls to the destination running now.",
		}, dest),
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_delivery_items_total", Help: "Outbox items by outcome: sent, failed (dead letter), retried (failed, will retry), skipped, superseded (not sent: a later change for the same profile and segment in its batch was sent instead), in_sync (not sent: the destination had acknowledged the desired state), handed_back (not sent, back to the outbox).",
		}, []string{"destination", "outcome"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_delivery_batch_size", Help: "Changes per call to the destination.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}, dest),
		CallSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_delivery_call_seconds", Help: "Duration of calls to the destination, by result: ok, error or timeout.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"destination", "result"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_last_success_timestamp_seconds", Help: "Unix time of the destination's last accepted call.",
		}, dest),
		Healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_delivery_healthy", Help: "1 when the destination delivers normally, 0 when it is failing or falling behind (see /readyz for why).",
		}, dest),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_reconcile_runs_total", Help: "Full reconciliations of a segment at the destination, by mode (listed: compared with the vendor's membership; reasserted: Kiln's state sent again) and result (ok, error).",
		}, []string{"destination", "mode", "result"}),
		ReconcileChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_reconcile_changes_total", Help: "What full reconciliations found, by change: added and removed (queued for delivery), unchanged, unknown (vendor members without a Kiln profile, left alone), unmanaged (no automation syncs that direction), corrected (acknowledged states fixed from the vendor's listing).",
		}, []string{"destination", "change"}),
	}
	r.MustRegister(d.Pending, d.Due, d.OldestAge, d.Queued, d.InFlight, d.Outcomes, d.BatchSize, d.CallSeconds, d.LastSuccess, d.Healthy,
		d.Reconciles, d.ReconcileChanges)
	return d
}

// Forget drops a destination's series (it was deleted).
func (d *Delivery) Forget(destination string) {
	for _, g := range []*prometheus.GaugeVec{d.Pending, d.Due, d.OldestAge, d.Queued, d.InFlight, d.LastSuccess, d.Healthy} {
		g.DeleteLabelValues(destination)
	}
	d.Outcomes.DeletePartialMatch(prometheus.Labels{"destination": destination})
	d.CallSeconds.DeletePartialMatch(prometheus.Labels{"destination": destination})
	d.BatchSize.DeleteLabelValues(destination)
	d.Reconciles.DeletePartialMatch(prometheus.Labels{"destination": destination})
	d.ReconcileChanges.DeletePartialMatch(prometheus.Labels{"destination": destination})
}
