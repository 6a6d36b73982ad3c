// Package metrics holds Kiln's Prometheus collectors, served at /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with Kiln's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	IngestEvents     *prometheus.CounterVec   // by result: stored, duplicate, rejected
	IngestBatchSize  prometheus.Histogram     // events per durable commit
	CommitDuration   prometheus.Histogram     // seconds per durable commit
	HTTPRequests     *prometheus.CounterVec   // by route and status code
	HTTPDuration     *prometheus.HistogramVec // by route
	ProcessedEvents  prometheus.Counter       // events through identity resolution
	ProcessorLag     prometheus.Gauge         // events in the log not yet processed
	Merges           prometheus.Counter
	RefusedLinks     prometheus.Counter // identity links refused by limits or blocklist
	ProcessorErrors  prometheus.Counter
	ProfilesResolved prometheus.Gauge       // identities in the in-memory index
	Transitions      *prometheus.CounterVec // segment entries and exits, by reason
	ExpiryLag        prometheus.Histogram   // seconds from a window's exact expiry to the recorded exit
	Delivery         *Delivery              // the outbox, by destination
}

// New makes a registry with the Go and process collectors and Kiln's own.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		IngestEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_ingest_events_total", Help: "Events received, by result: stored, duplicate (a retry of a stored message id) or rejected.",
		}, []string{"result"}),
		IngestBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kiln_ingest_commit_events", Help: "Events per durable commit of the ingest journal.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kiln_ingest_commit_seconds", Help: "Time to make one group of events durable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		ProcessedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_processor_events_total", Help: "Events through identity resolution and profile update.",
		}),
		ProcessorLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiln_processor_lag_events", Help: "Events stored but not yet processed.",
		}),
		Merges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_identity_merges_total", Help: "Profile merges performed.",
		}),
		RefusedLinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_identity_refused_links_total", Help: "Identity links refused by the per-profile limits or the blocklist.",
		}),
		ProcessorErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_processor_errors_total", Help: "Failed processor batches (retried).",
		}),
		ProfilesResolved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiln_identity_index_size", Help: "Identifiers in the in-memory identity index.",
		}),
	}
	m.Transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_segment_transitions_total", Help: "Segment entries and exits recorded, by reason.",
	}, []string{"reason"})
	m.ExpiryLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kiln_segment_expiry_lag_seconds", Help: "Time from a window's exact expiry instant to the durable record of the exit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	r.MustRegister(m.Transitions, m.ExpiryLag)
	m.Delivery = newDelivery(r)
	r.MustRegister(m.IngestEvents, m.IngestBatchSize, m.CommitDuration, m.HTTPRequests, m.HTTPDuration,
		m.ProcessedEvents, m.ProcessorLag, m.Merges, m.RefusedLinks, m.ProcessorErrors, m.ProfilesResolved)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Instrument counts and times requests to h under a fixed route label (a
// label per path would let clients blow up the series count).
func (m *Metrics) Instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		m.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
