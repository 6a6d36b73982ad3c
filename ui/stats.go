package ui

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// stats keeps what the overview shows that would be costly to recompute
// on every view: today's entries and exits (counted incrementally from the
// transition log with a cursor), downsampled segment size series, and
// samples of the log's head for the ingest rate.
type stats struct {
	mu      sync.Mutex
	day     time.Time // start of the counted day, in the workspace zone
	cursor  int64     // last transition ID counted
	entered map[string]int64
	exited  map[string]int64
	partial bool // the count has not caught up with the log yet

	sizeMu sync.Mutex
	series map[string]*series

	seqMu   sync.Mutex
	samples []seqSample
}

type seqSample struct {
	at  time.Time
	seq int64
}

func newStats() *stats {
	return &stats{entered: map[string]int64{}, exited: map[string]int64{}, series: map[string]*series{}}
}

// countBudget bounds how long one page view spends catching up on the
// transition log; the rest is counted in the background.
var countBudget = 40 * time.Millisecond

// today returns entries and exits per segment since midnight, and whether
// the count is still catching up (a definition applied today can have
// written hundreds of thousands of transitions).
func (s *Server) today(ctx context.Context) (entered, exited map[string]int64, partial bool, err error) {
	t := s.stats
	t.mu.Lock()
	defer t.mu.Unlock()
	now := s.now().In(s.loc)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, s.loc)
	if !t.day.Equal(day) {
		start, err := firstTransitionAtOrAfter(ctx, s.st, day)
		if err != nil {
			return nil, nil, false, err
		}
		t.day, t.cursor = day, start
		t.entered, t.exited = map[string]int64{}, map[string]int64{}
	}
	if !t.partial { // a background catch-up is not running
		deadline := time.Now().Add(countBudget)
		for {
			done, err := s.countChunk(ctx)
			if err != nil {
				return nil, nil, false, err
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.partial = true
				go s.catchUp(day)
				break
			}
		}
	}
	return clone(t.entered), clone(t.exited), t.partial, nil
}

// countChunk counts the next transitions after the cursor; t.mu is held.
// It reports whether the log is read to its end.
func (s *Server) countChunk(ctx context.Context) (bool, error) {
	t := s.stats
	const chunk = 2000
	ts, err := s.st.Transitions(ctx, store.TransitionQuery{After: t.cursor, Limit: chunk})
	if err != nil {
		return false, err
	}
	for _, tr := range ts {
		if !tr.At.Before(t.day) {
			if tr.Entered {
				t.entered[tr.Segment]++
			} else {
				t.exited[tr.Segment]++
			}
		}
		t.cursor = tr.ID
	}
	return len(ts) < chunk, nil
}

// catchUp counts the rest of the day's transitions, a chunk at a time so
// page views are not held up for long.
func (s *Server) catchUp(day time.Time) {
	t := s.stats
	ctx := context.Background()
	for {
		t.mu.Lock()
		if !t.day.Equal(day) { // a new day started over
			t.mu.Unlock()
			return
		}
		done, err := s.countChunk(ctx)
		if err != nil || done {
			t.partial = false
			if err != nil {
				s.log.Warn("ui: counting today's transitions", "err", err)
				t.day = time.Time{} // start over on the next view
			}
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

func clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// firstTransitionAtOrAfter returns the cursor (an ID to read after) from
// which transitions are at or after t. Transition IDs grow with time, so
// a binary search over the ID space finds it in a few dozen indexed
// reads, however long the log.
func firstTransitionAtOrAfter(ctx context.Context, st store.Segments, t time.Time) (int64, error) {
	// before(x): the first transition after cursor x is older than t.
	before := func(x int64) (bool, bool, error) {
		ts, err := st.Transitions(ctx, store.TransitionQuery{After: x, Limit: 1})
		if err != nil || len(ts) == 0 {
			return false, false, err
		}
		return ts[0].At.Before(t), true, nil
	}
	isBefore, any, err := before(0)
	if err != nil || !any || !isBefore {
		return 0, err
	}
	lo, hi := int64(0), int64(1024) // invariant: before(lo) is true
	for {
		b, any, err := before(hi)
		if err != nil {
			return 0, err
		}
		if !any || !b {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		b, any, err := before(mid)
		if err != nil {
			return 0, err
		}
		if any && b {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// recentTransitions returns the newest n transitions matching q, newest
// first. The store reads oldest first from a cursor, so it searches for
// the cursor after which at most n remain.
func recentTransitions(ctx context.Context, st store.Segments, q store.TransitionQuery, n int) ([]kiln.Transition, error) {
	fits := func(x int64) ([]kiln.Transition, bool, error) {
		q.After, q.Limit = x, n+1
		ts, err := st.Transitions(ctx, q)
		return ts, len(ts) <= n, err
	}
	ts, ok, err := fits(0)
	if err != nil {
		return nil, err
	}
	if !ok {
		// lo: more than n remain after it; hi: at most n remain.
		lo, hi := ts[0].ID-1, ts[n].ID
		for {
			_, ok, err := fits(hi)
			if err != nil {
				return nil, err
			}
			if ok {
				break
			}
			lo, hi = hi, hi*2
		}
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			_, ok, err := fits(mid)
			if err != nil {
				return nil, err
			}
			if ok {
				hi = mid
			} else {
				lo = mid
			}
		}
		if ts, _, err = fits(lo); err != nil {
			return nil, err
		}
		if len(ts) > n {
			ts = ts[len(ts)-n:]
		}
	}
	out := make([]kiln.Transition, len(ts))
	for i, t := range ts {
		out[len(ts)-1-i] = t
	}
	return out, nil
}

// series is one segment's size history, downsampled to the last sample
// of each bucket.
type series struct {
	buckets map[int64]int64 // bucket start (Unix s) -> size
	last    time.Time       // newest sample read
}

type point struct {
	At   time.Time
	Size int64
}

// sizeSeries returns a segment's size over the window, one point per
// bucket, reading only samples newer than the previous call.
func (s *Server) sizeSeries(ctx context.Context, segment string, window, bucket time.Duration) ([]point, error) {
	t := s.stats
	t.sizeMu.Lock()
	defer t.sizeMu.Unlock()
	key := segment + "|" + bucket.String()
	sr := t.series[key]
	if sr == nil {
		sr = &series{buckets: map[int64]int64{}}
		t.series[key] = sr
	}
	start := s.now().Add(-window)
	since := start
	if sr.last.After(since) {
		since = sr.last.Add(time.Nanosecond)
	}
	ss, err := s.st.SegmentSizes(ctx, segment, since)
	if err != nil {
		return nil, err
	}
	b := int64(bucket / time.Second)
	for _, x := range ss {
		sr.buckets[x.At.Unix()/b*b] = x.Size
		if x.At.After(sr.last) {
			sr.last = x.At
		}
	}
	out := make([]point, 0, len(sr.buckets))
	for k, v := range sr.buckets {
		if at := time.Unix(k, 0); at.Before(start.Add(-bucket)) {
			delete(sr.buckets, k)
		} else {
			out = append(out, point{At: at, Size: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// ingestRate samples the log's head and returns events per second over
// the last few minutes (ok false until two samples are far enough apart).
func (s *Server) ingestRate(ctx context.Context) (rate float64, head int64, ok bool, err error) {
	head, err = s.st.LastSeq(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	t := s.stats
	t.seqMu.Lock()
	defer t.seqMu.Unlock()
	now := s.now()
	t.samples = append(t.samples, seqSample{at: now, seq: head})
	// Keep ten minutes of samples, at most one per five seconds.
	keep := t.samples[:0]
	for i, x := range t.samples {
		if now.Sub(x.at) > 10*time.Minute {
			continue
		}
		if i < len(t.samples)-1 && len(keep) > 0 && x.at.Sub(keep[len(keep)-1].at) < 5*time.Second {
			continue
		}
		keep = append(keep, x)
	}
	t.samples = keep
	// The oldest sample within five minutes gives the rate.
	for _, x := range t.samples {
		if now.Sub(x.at) <= 5*time.Minute && now.Sub(x.at) >= 5*time.Second {
			return float64(head-x.seq) / now.Sub(x.at).Seconds(), head, true, nil
		}
	}
	return 0, head, false, nil
}
