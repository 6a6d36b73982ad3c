package action

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln/store"
)

// Destination states in DestinationHealth.
const (
	HealthOK      = "ok"
	HealthFailing = "failing" // its recent attempts failed
	HealthBehind  = "behind"  // its oldest due item has waited too long
)

// failingAfter is how many attempts in a row must fail for a destination
// to be reported failing: one refused call is noise, five are a pattern.
const failingAfter = 5

// DestinationHealth is how delivery to one destination is going, as this
// process sees it (its counts are since the process started) together
// with the outbox's backlog (shared by every process).
type DestinationHealth struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	State string `json:"state"`
	// Reason says why the state is not ok, for an operator.
	Reason     string    `json:"reason,omitempty"`
	Pending    int       `json:"pending"`             // in the outbox, due or not
	Due        int       `json:"due"`                 // in the outbox, due now
	OldestDue  time.Time `json:"oldestDue,omitzero"`  // of the due pending items
	Held       int       `json:"held"`                // leased by this process
	InFlight   int       `json:"inFlight"`            // calls running
	Sent       int64     `json:"sent"`                // delivered
	Failed     int64     `json:"failed"`              // dead letters
	Retried    int64     `json:"retried"`             // failed attempts to be retried
	Skipped    int64     `json:"skipped"`             // not sent on purpose
	Superseded int64     `json:"superseded"`          // not sent: a later change in its batch stood for it
	InSync     int64     `json:"inSync"`              // not sent: the destination had acknowledged the desired state
	HandedBack int64     `json:"handedBack"`          // back to the outbox unsent
	Failures   int       `json:"consecutiveFailures"` // attempts failed in a row
	LastOK     time.Time `json:"lastSuccess,omitzero"`
	LastFail   time.Time `json:"lastFailure,omitzero"`
	LastError  string    `json:"lastError,omitempty"`
}

// destStats is one destination's delivery record in this process.
type destStats struct {
	mu       sync.Mutex
	name     string
	kind     string
	inFlight int
	h        DestinationHealth // counts and last times
}

func (d *Dispatcher) stats(id string) *destStats {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	s := d.dstats[id]
	if s == nil {
		s = &destStats{name: id}
		d.dstats[id] = s
	}
	return s
}

func (s *destStats) label() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// callStarted and callEnded count calls in flight and time them.
func (d *Dispatcher) callStarted(s *destStats, batch int) {
	s.mu.Lock()
	s.inFlight++
	n, name := s.inFlight, s.name
	s.mu.Unlock()
	if m := d.cfg.Metrics; m != nil {
		m.InFlight.WithLabelValues(name).Set(float64(n))
		m.BatchSize.WithLabelValues(name).Observe(float64(batch)) // changes in the call
	}
}

func (d *Dispatcher) callEnded(s *destStats, took time.Duration, result string) {
	s.mu.Lock()
	s.inFlight--
	n, name := s.inFlight, s.name
	s.mu.Unlock()
	if m := d.cfg.Metrics; m != nil {
		m.InFlight.WithLabelValues(name).Set(float64(n))
		m.CallSeconds.WithLabelValues(name, result).Observe(took.Seconds())
	}
}

// record counts an outcome.
func (d *Dispatcher) record(s *destStats, r store.OutboxResult) {
	now := time.Now()
	var label string
	s.mu.Lock()
	switch {
	case isInSync(r):
		// The destination had acknowledged the desired state: no call.
		label = "in_sync"
		s.h.InSync++
	case r.State == store.OutboxDelivered && !r.Attempted:
		// Superseded in its batch by a later change for the same
		// profile and segment: recorded, not sent.
		label = "superseded"
		s.h.Superseded++
	case r.State == store.OutboxDelivered:
		label = "sent"
		s.h.Sent++
		s.h.Failures, s.h.LastOK = 0, now
	case r.State == store.OutboxDead:
		label = "failed"
		s.h.Failed++
		if r.Attempted {
			s.h.Failures++
			s.h.LastFail, s.h.LastError = now, r.Error
		}
	case r.State == store.OutboxSkipped:
		label = "skipped"
		s.h.Skipped++
	case r.Attempted:
		label = "retried"
		s.h.Retried++
		s.h.Failures++
		s.h.LastFail, s.h.LastError = now, r.Error
	default:
		label = "handed_back"
		s.h.HandedBack++
	}
	name := s.name
	s.mu.Unlock()
	if m := d.cfg.Metrics; m != nil {
		m.Outcomes.WithLabelValues(name, label).Inc()
		if label == "sent" {
			m.LastSuccess.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
		}
	}
}

// Health returns every known destination's health, by name.
func (d *Dispatcher) Health() []DestinationHealth {
	backlog := *d.backlog.Load()
	d.qmu.Lock()
	ids := make([]string, 0, len(d.known))
	for id := range d.known {
		ids = append(ids, id)
	}
	held := map[string]int{}
	for id, q := range d.queues {
		held[id] = int(q.n.Load())
	}
	d.qmu.Unlock()
	now := d.cfg.Now()
	out := make([]DestinationHealth, 0, len(ids))
	for _, id := range ids {
		s := d.stats(id)
		s.mu.Lock()
		h := s.h
		h.ID, h.Name, h.Kind, h.InFlight = id, s.name, s.kind, s.inFlight
		s.mu.Unlock()
		b := backlog[id]
		h.Pending, h.Due, h.OldestDue, h.Held = b.Pending, b.Due, b.OldestDue, held[id]
		h.State = HealthOK
		var why []string
		if h.Failures >= failingAfter {
			h.State = HealthFailing
			why = append(why, fmt.Sprintf("the last %d attempts failed, the latest: %s", h.Failures, h.LastError))
		}
		if !h.OldestDue.IsZero() {
			if age := now.Sub(h.OldestDue); age > d.cfg.BehindAfter {
				if h.State == HealthOK {
					h.State = HealthBehind
				}
				why = append(why, fmt.Sprintf("its oldest pending item was due %s ago (more than %s), %d items are due", age.Round(time.Second), d.cfg.BehindAfter, h.Due))
			}
		}
		for i, w := range why {
			if i > 0 {
				h.Reason += "; "
			}
			h.Reason += w
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b DestinationHealth) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// monitorEvery is how often the backlog is read for metrics and health.
func (d *Dispatcher) monitorEvery() time.Duration {
	return min(5*time.Second, max(100*time.Millisecond, 5*d.cfg.Poll))
}

// monitor reads the destinations and the outbox's backlog until ctx ends:
// the backlog names the destinations to claim for (with items of a
// destination this process has not loaded, e.g. one another server
// created) and feeds the metrics and health.
func (d *Dispatcher) monitor(ctx context.Context) {
	t := time.NewTicker(d.monitorEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.refresh(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("reading the outbox backlog failed", "err", err)
		}
	}
}

// refresh reads the destinations and the backlog, and updates the metrics.
func (d *Dispatcher) refresh(ctx context.Context) error {
	dests, err := d.st.ListDestinations(ctx)
	if err != nil {
		return err
	}
	bl, err := d.st.OutboxBacklog(ctx, d.cfg.Now())
	if err != nil {
		return err
	}
	backlog := make(map[string]store.Backlog, len(bl))
	for _, b := range bl {
		backlog[b.Destination] = b
	}
	d.backlog.Store(&backlog)
	known := make(map[string]bool, len(dests)+len(bl))
	for _, ds := range dests {
		known[ds.ID] = true
		s := d.stats(ds.ID)
		s.mu.Lock()
		s.name, s.kind = ds.Name, ds.Kind
		s.mu.Unlock()
	}
	for _, b := range bl {
		known[b.Destination] = true // items of a deleted destination are skipped, so claimed
	}
	d.qmu.Lock()
	gone := []string{}
	for id := range d.known {
		if !known[id] {
			gone = append(gone, id)
		}
	}
	d.known = known
	d.qmu.Unlock()
	m := d.cfg.Metrics
	if m == nil {
		return nil
	}
	for _, id := range gone {
		m.Forget(d.stats(id).label())
	}
	for _, h := range d.Health() {
		m.Pending.WithLabelValues(h.Name).Set(float64(h.Pending))
		m.Due.WithLabelValues(h.Name).Set(float64(h.Due))
		age := 0.0
		if !h.OldestDue.IsZero() {
			age = max(0, d.cfg.Now().Sub(h.OldestDue).Seconds())
		}
		m.OldestAge.WithLabelValues(h.Name).Set(age)
		m.Queued.WithLabelValues(h.Name).Set(float64(h.Held))
		ok := 0.0
		if h.State == HealthOK {
			ok = 1
		}
		m.Healthy.WithLabelValues(h.Name).Set(ok)
	}
	return nil
}
