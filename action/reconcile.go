package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// Full reconciliation (issue 12).
//
// Reconcile compares, for each segment a connector destination syncs,
// the desired state (the segment's current members) with the vendor's:
//
//   - Listed: when the connector can list the vendor's membership
//     (connector.Lister), the listing is the truth. Where it disagrees with
//     the acknowledged state, the acknowledged state is corrected (newest
//     wins: a delivery confirmed after the listing started keeps its own),
//     and where it disagrees with the desired state an item is queued in
//     the profile's lane, so the dispatcher sends the difference in the
//     vendor's batches, at its rate, after whatever the lane holds already.
//     Vendor members no Kiln profile has (added by hand, say) are counted
//     as unknown and left alone.
//   - Reasserted: otherwise, Kiln's desired state is sent again, ignoring
//     what was acknowledged: an add for every member and a remove for every
//     profile the destination ever acknowledged that is not a member.
//
// Only differences an automation of the destination syncs are queued (an
// entry-only automation never removes); the others are counted as
// unmanaged. The report counts what was queued, not what the vendor has
// accepted yet: the items are delivered like any other, with retries.

// ReconcileReport is the outcome of one reconciliation of a destination.
type ReconcileReport struct {
	Destination string          `json:"destination"` // ID
	Name        string          `json:"name"`
	Segments    []SegmentReport `json:"segments"`
	// Totals over the segments.
	Added     int       `json:"added"`     // adds queued
	Removed   int       `json:"removed"`   // removes queued
	Unchanged int       `json:"unchanged"` // profiles already right at the vendor (listed) or not re-sent
	Unknown   int       `json:"unknown"`   // vendor members Kiln has no profile for, left alone
	Unmanaged int       `json:"unmanaged"` // differences no automation of the destination syncs
	Corrected int       `json:"corrected"` // acknowledged states corrected from the listing
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
}

// SegmentReport is one segment's part of a ReconcileReport.
type SegmentReport struct {
	Segment string `json:"segment"`
	// Mode is "listed" (compared with the vendor's membership) or
	// "reasserted" (Kiln's state sent again).
	Mode      string `json:"mode"`
	Members   int    `json:"members"` // Kiln's members now
	Listed    int    `json:"listed"`  // vendor members read (listed mode)
	Added     int    `json:"added"`
	Removed   int    `json:"removed"`
	Unchanged int    `json:"unchanged"`
	Unknown   int    `json:"unknown"`
	Unmanaged int    `json:"unmanaged"`
	Corrected int    `json:"corrected"`
	Error     string `json:"error,omitempty"`
}

// Reconciliation modes.
const (
	ReconcileListed     = "listed"
	ReconcileReasserted = "reasserted"
)

// ReasonReconcile is the Reason of a reconciliation's items.
const ReasonReconcile = "reconcile"

// syncAutos are the automations that sync one segment to a destination.
type syncAutos struct{ enter, exit *store.Automation }

// reconcileLocks keeps one reconciliation per destination at a time.
type reconcileLocks struct {
	mu      sync.Mutex
	running map[string]bool
}

func (l *reconcileLocks) try(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running == nil {
		l.running = map[string]bool{}
	}
	if l.running[id] {
		return false
	}
	l.running[id] = true
	return true
}

func (l *reconcileLocks) done(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.running, id)
}

// Reconcile runs a full reconciliation of one connector destination now
// (see above) and reports what it queued. EInvalid for a webhook or email
// destination (their messages are events, not state), EConflict when a
// reconciliation of the destination is running already.
func (s *Service) Reconcile(ctx context.Context, idOrName string) (*ReconcileReport, error) {
	dest, err := s.st.GetDestination(ctx, idOrName)
	if err != nil {
		return nil, notFound(err, "no destination %q", idOrName)
	}
	if !isConnector(dest.Kind) {
		return nil, kiln.Errorf(kiln.EInvalid, "destination %s is a %s: only connector destinations sync membership (webhooks and emails are events, delivered at least once)", dest.Name, dest.Kind)
	}
	if !s.reconciling.try(dest.ID) {
		return nil, kiln.Errorf(kiln.EConflict, "a reconciliation of destination %s is running already", dest.Name)
	}
	defer s.reconciling.done(dest.ID)
	rep := &ReconcileReport{Destination: dest.ID, Name: dest.Name, Segments: []SegmentReport{}, Started: s.now().UTC()}
	segs, err := s.syncedSegments(ctx, dest)
	if err != nil {
		return nil, err
	}
	ds, err := s.Dispatcher.destination(ctx, dest.ID)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest.Name, err)
	}
	lister, _ := ds.connector().(connector.Lister)
	var errs []error
	for _, seg := range sortedKeys(segs) {
		sr, err := s.reconcileSegment(ctx, dest, seg, segs[seg], lister)
		if err != nil {
			sr.Error = kiln.ErrorMessage(err)
			errs = append(errs, fmt.Errorf("segment %s: %w", seg, err))
		}
		rep.Segments = append(rep.Segments, sr)
		rep.Added += sr.Added
		rep.Removed += sr.Removed
		rep.Unchanged += sr.Unchanged
		rep.Unknown += sr.Unknown
		rep.Unmanaged += sr.Unmanaged
		rep.Corrected += sr.Corrected
		s.Dispatcher.reconciled(dest.Name, sr, err)
	}
	rep.Finished = s.now().UTC()
	if rep.Added+rep.Removed > 0 {
		s.Dispatcher.dirty.Store(true)
		s.Dispatcher.Wake()
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("reconciling destination %s: %w", dest.Name, errors.Join(errs...))
	}
	return rep, nil
}

// syncedSegments returns, by segment, the enabled automations that sync
// membership to dest.
func (s *Service) syncedSegments(ctx context.Context, dest *store.Destination) (map[string]syncAutos, error) {
	autos, err := s.st.ListAutomations(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]syncAutos{}
	for i := range autos {
		a := &autos[i]
		if a.Destination != dest.ID || !a.Enabled || a.Hook {
			continue
		}
		opts, err := ParseOptions(a.Options)
		if err != nil {
			continue
		}
		if m, _ := syncsKind(dest.Kind, *a, opts); !m {
			continue
		}
		sa := out[a.Segment]
		if a.On == OnEnter {
			sa.enter = a
		} else {
			sa.exit = a
		}
		out[a.Segment] = sa
	}
	return out, nil
}

// listRetries is how many times a listing that failed with a retryable
// error (a 429, a 5xx) is started again, after the vendor's Retry-After.
const listRetries = 3

func (s *Service) reconcileSegment(ctx context.Context, dest *store.Destination, seg string, sa syncAutos, lister connector.Lister) (SegmentReport, error) {
	sr := SegmentReport{Segment: seg, Mode: ReconcileReasserted}
	if lister != nil {
		sr.Mode = ReconcileListed
	}
	readAt := s.now().UTC()
	acks := map[string]store.SyncAck{}
	if err := s.st.ScanSyncAcks(ctx, dest.ID, seg, func(a store.SyncAck) error { acks[a.ProfileID] = a; return nil }); err != nil {
		return sr, err
	}
	desired := map[string]bool{}
	for after := ""; ; {
		ms, err := s.st.Members(ctx, seg, after, 1000)
		if err != nil {
			return sr, err
		}
		for _, m := range ms {
			desired[m.ProfileID] = true
		}
		if len(ms) < 1000 {
			break
		}
		after = ms[len(ms)-1].ProfileID
	}
	sr.Members = len(desired)
	var items []store.OutboxItem
	queue := func(a *store.Automation, pid string, entered, force bool) {
		items = append(items, s.reconcileItem(a, dest.ID, seg, pid, entered, force))
		if entered {
			sr.Added++
		} else {
			sr.Removed++
		}
	}
	if lister == nil {
		for _, pid := range sortedKeys(desired) {
			if sa.enter == nil {
				sr.Unmanaged++
				continue
			}
			queue(sa.enter, pid, true, true)
		}
		for _, pid := range sortedKeys(acks) {
			if desired[pid] {
				continue
			}
			if sa.exit == nil {
				sr.Unmanaged++
				continue
			}
			queue(sa.exit, pid, false, true)
		}
		return sr, s.enqueue(ctx, items)
	}
	vendor := map[string]bool{}
	var listed, unknown int
	var err error
	for try := 0; ; try++ {
		clear(vendor)
		listed, unknown = 0, 0
		err = lister.ListMembers(ctx, seg, func(ms []connector.Member) error {
			for _, m := range ms {
				listed++
				pid, err := s.profileOf(ctx, m)
				if err != nil {
					return err
				}
				if pid == "" {
					unknown++
					continue
				}
				vendor[pid] = true
			}
			return nil
		})
		if err == nil || try == listRetries || !connector.Retryable(err) || ctx.Err() != nil {
			break
		}
		wait := max(connector.RetryAfter(err), time.Second)
		s.Dispatcher.log.Warn("listing the vendor's members failed; trying again", "destination", dest.Name, "segment", seg, "after", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	if err != nil {
		return sr, fmt.Errorf("listing the vendor's members: %w", err)
	}
	sr.Listed, sr.Unknown = listed, unknown
	var fixes []store.SyncAck
	all := map[string]bool{}
	for pid := range desired {
		all[pid] = true
	}
	for pid := range vendor {
		all[pid] = true
	}
	for pid := range acks {
		all[pid] = true
	}
	for _, pid := range sortedKeys(all) {
		want, has := desired[pid], vendor[pid]
		prev, acked := acks[pid]
		if !acked || prev.In != has {
			// The vendor's state as of the listing; a delivery confirmed
			// since keeps its own (newest wins).
			fixes = append(fixes, store.SyncAck{Destination: dest.ID, Segment: seg, ProfileID: pid, In: has, At: readAt})
		}
		switch {
		case want == has:
			sr.Unchanged++
		case want && sa.enter != nil:
			queue(sa.enter, pid, true, false)
		case !want && sa.exit != nil:
			queue(sa.exit, pid, false, false)
		default:
			sr.Unmanaged++
		}
	}
	sr.Corrected = len(fixes)
	for _, chunk := range chunks(fixes, 1000) {
		if err := s.st.PutSyncAcks(ctx, chunk); err != nil {
			return sr, err
		}
	}
	return sr, s.enqueue(ctx, items)
}

func (s *Service) enqueue(ctx context.Context, items []store.OutboxItem) error {
	for _, chunk := range chunks(items, 1000) {
		if err := s.st.EnqueueOutbox(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

// profileOf finds the profile a vendor member is, by email, user id or
// phone; "" when Kiln has none.
func (s *Service) profileOf(ctx context.Context, m connector.Member) (string, error) {
	email := strings.ToLower(strings.TrimSpace(m.Email)) // as Kiln keeps emails
	for _, id := range []kiln.Identifier{{Kind: kiln.Email, Value: email}, {Kind: kiln.UserID, Value: m.UserID}, {Kind: kiln.Phone, Value: m.Phone}} {
		if id.Value == "" {
			continue
		}
		pid, err := s.st.ProfileFor(ctx, id)
		if err == nil {
			return pid, nil
		}
		if !store.IsNotFound(err) {
			return "", err
		}
	}
	return "", nil
}

// reconcileItem is the outbox item that makes the dispatcher check one
// profile's membership at the destination (and, forced, send it whatever
// was acknowledged).
func (s *Service) reconcileItem(a *store.Automation, dest, seg, pid string, entered, force bool) store.OutboxItem {
	now := s.now().UTC()
	typ := EventExited
	if entered {
		typ = EventEntered
	}
	payload, _ := json.Marshal(Payload{Type: typ, Segment: seg, ProfileID: pid, Entered: entered, At: now, Reason: ReasonReconcile, Force: force})
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00%d", a.ID, pid, seg, entered, now.UnixNano())
	return store.OutboxItem{ProfileID: pid, Destination: dest, Automation: a.ID, Key: "rec_" + hex.EncodeToString(h.Sum(nil)[:16]),
		Payload: payload, Due: now, CreatedAt: now}
}

// ReconcileAll reconciles every connector destination that syncs a
// segment, one after another, and returns their reports (with the
// errors joined).
func (s *Service) ReconcileAll(ctx context.Context) ([]*ReconcileReport, error) {
	dests, err := s.st.ListDestinations(ctx)
	if err != nil {
		return nil, err
	}
	var out []*ReconcileReport
	var errs []error
	for _, d := range dests {
		if !isConnector(d.Kind) {
			continue
		}
		segs, err := s.syncedSegments(ctx, &d)
		if err != nil {
			return out, err
		}
		if len(segs) == 0 {
			continue
		}
		rep, err := s.Reconcile(ctx, d.ID)
		if rep != nil {
			out = append(out, rep)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// runReconcile reconciles every ReconcileEvery until ctx ends.
func (s *Service) runReconcile(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reps, err := s.ReconcileAll(ctx)
		for _, r := range reps {
			s.Dispatcher.log.Info("reconciled destination", "destination", r.Name, "added", r.Added, "removed", r.Removed,
				"unchanged", r.Unchanged, "unknown", r.Unknown, "unmanaged", r.Unmanaged, "corrected", r.Corrected)
		}
		if err != nil && ctx.Err() == nil {
			s.Dispatcher.log.Error("scheduled reconciliation failed; it runs again at the next tick", "err", err)
		}
	}
}

// reconciled counts a segment's reconciliation in the metrics.
func (d *Dispatcher) reconciled(dest string, sr SegmentReport, err error) {
	m := d.cfg.Metrics
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.Reconciles.WithLabelValues(dest, sr.Mode, result).Inc()
	for change, n := range map[string]int{"added": sr.Added, "removed": sr.Removed, "unchanged": sr.Unchanged,
		"unknown": sr.Unknown, "unmanaged": sr.Unmanaged, "corrected": sr.Corrected} {
		if n > 0 {
			m.ReconcileChanges.WithLabelValues(dest, change).Add(float64(n))
		}
	}
}

// connector returns the destination's connector (nil for webhooks and email).
func (ds *destState) connector() connector.Connector {
	s := ds.s
	if g, ok := s.(guarded); ok {
		s = g.s
	}
	if c, ok := s.(*connectorSender); ok {
		return c.c
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func chunks[T any](xs []T, n int) [][]T {
	var out [][]T
	for len(xs) > n {
		out = append(out, xs[:n:n])
		xs = xs[n:]
	}
	if len(xs) > 0 {
		out = append(out, xs)
	}
	return out
}
