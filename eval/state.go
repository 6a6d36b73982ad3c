package eval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"github.com/kiln-cdp/kiln"

	"github.com/kiln-cdp/kiln/rule"
)

// State is one profile's evaluation state. Its layout belongs to the
// Program that made it (NewState, or UnmarshalBinary then Program.Adopt);
// after a definition edit the engine rebuilds states by replaying events.
//
// Memory: a handful of slice headers plus
//   - recs: one record per retained event that a windowed aggregate
//     reads: [time ms, header, feature mask words..., values...], sorted
//     by event time, pruned beyond the longest window;
//   - acc: running accumulators of all-time and fixed-date aggregates;
//   - sets: hash sets of running distinct counts (8 bytes per value);
//   - cache: the current value of every aggregate (8 bytes each);
//   - due: the next instant each time-dependent node can change;
//   - strs: the strings that boxed values refer to.
type State struct {
	fp      uint64
	now     int64 // last evaluation instant, ms
	nextDue int64 // 0: nothing scheduled
	inited  bool
	live    int32 // strings alive at the last pool compaction
	pend    int32 // records of future events not yet folded
	// fix holds the fixed-size parts in one allocation (one cache line
	// run per profile, one slice header): segment membership bits, node
	// values, due instants, running accumulators; see Program.memberOf etc.
	fix  []uint64
	sets [][]uint64
	strs []string
}

func (p *Program) memberOf(st *State) []uint64 { return st.fix[:p.oCache] }
func (p *Program) cacheOf(st *State) []uint64  { return st.fix[p.oCache:p.oDue] }
func (p *Program) accOf(st *State) []uint64    { return st.fix[p.oAcc:p.oPBits] }
func (p *Program) pbitsOf(st *State) []uint64  { return st.fix[p.oPBits:p.oRecs] }
func (p *Program) recsOf(st *State) []uint64   { return st.fix[p.oRecs:] }

// dueOf views the due words as int64 (the same bits).
func (p *Program) dueOf(st *State) []int64 {
	if p.nDue == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(&st.fix[p.oDue])), p.nDue)
}

// NewState returns the state of a profile nobody has seen yet.
func (p *Program) NewState() *State {
	st := &State{fp: p.fp}
	p.initState(st)
	if p.emptyCache != nil {
		copy(p.cacheOf(st), p.emptyCache)
	}
	return st
}

func (p *Program) initState(st *State) {
	// Room for a few records up front: most profiles have events, and
	// growing copies the fixed part.
	st.fix = make([]uint64, p.oRecs, p.oRecs+32)
	cache := p.cacheOf(st)
	for i := range cache {
		cache[i] = boxNull
	}
	if p.accWords > 0 {
		acc := p.accOf(st)
		for _, a := range p.aggs {
			if a.kind != akRun {
				continue
			}
			switch a.fn {
			case rule.FnMin, rule.FnMax:
				acc[a.acc] = boxNull
			case rule.FnFirst, rule.FnLast, rule.FnFirstTime, rule.FnLastTime:
				acc[a.acc+1] = boxNull
			}
		}
	}
	if p.nSets > 0 {
		st.sets = make([][]uint64, p.nSets)
	}
}

// Size is the state's approximate heap footprint in bytes (what
// benchmarks report per profile).
func (st *State) Size() int {
	n := 8*4 + 24*3 // fields and slice headers
	n += 8 * cap(st.fix)
	for _, s := range st.sets {
		n += 24 + 8*cap(s)
	}
	for _, s := range st.strs {
		n += 16 + len(s)
	}
	return n
}

// box stores a value in the state's encoding, interning strings and
// numbers that do not fit a word.
func (st *State) box(v value) uint64 {
	switch v.kind {
	case kNum:
		return st.boxNum(v.dec())
	case kBool:
		if v.b {
			return boxTrue
		}
		return boxFalse
	case kStr:
		return tagStr | st.intern(v.str)<<5
	case kOver:
		return boxOver
	}
	return boxNull
}

// boxNum boxes a number (made canonical here).
func (st *State) boxNum(n num) uint64 {
	n = n.norm()
	if w, ok := wordNum(n); ok {
		return w
	}
	return tagNum | st.intern(numKey(n))<<5
}

func (st *State) intern(s string) uint64 {
	for i, x := range st.strs {
		if x == s {
			return uint64(i)
		}
	}
	st.strs = append(st.strs, s)
	return uint64(len(st.strs) - 1)
}

func (st *State) unbox(b uint64) value {
	if n, ok := numWord(b); ok {
		return numV(n)
	}
	switch b & tagMask {
	case tagTrue:
		return boolV(true)
	case tagFals:
		return boolV(false)
	case tagStr:
		return value{kind: kStr, str: st.strs[b>>5]}
	case tagNum:
		return numV(keyNum(st.strs[b>>5]))
	case tagOver:
		return overV
	}
	return null
}

// Records.

const pendingBit = uint64(1) << 32

func recLen(recs []uint64, i int) int { return int(uint32(recs[i+1])) }

// featVals returns the stored values of feature f in the record at i.
func (p *Program) featVals(recs []uint64, i, f int) (bool, []uint64) {
	mask := recs[i+2 : i+2+p.maskWords]
	if mask[f>>6]&(1<<(f&63)) == 0 {
		return false, nil
	}
	pos := i + 2 + p.maskWords
	for w := 0; w < p.maskWords; w++ {
		m := mask[w]
		for m != 0 {
			j := w*64 + bits.TrailingZeros64(m)
			m &= m - 1
			ft := p.feats[j]
			width := 0
			if ft.enc != encNone {
				if ft.itemPath {
					width = 1 + int(recs[pos])
				} else {
					width = 1
				}
			}
			if j == f {
				if ft.enc == encNone {
					return true, nil
				}
				if ft.itemPath {
					return true, recs[pos+1 : pos+width]
				}
				return true, recs[pos : pos+1]
			}
			pos += width
		}
	}
	return false, nil
}

// insertRec places a record by event time, after records with the same
// time (so ties keep arrival order, as the naive evaluator does).
// Records live after the fixed part of st.fix: one allocation per
// profile.
func (p *Program) insertRec(st *State, rec []uint64) {
	t := int64(rec[0])
	i := p.oRecs
	for i < len(st.fix) && int64(st.fix[i]) <= t {
		i += recLen(st.fix, i)
	}
	n := len(st.fix)
	if cap(st.fix)-n < len(rec) {
		// Double the record part (at least 24 words): growing copies
		// the fixed part too, so growth steps must not be small.
		grown := make([]uint64, n, n+len(rec)+max(24, n-p.oRecs))
		copy(grown, st.fix)
		st.fix = grown
	}
	st.fix = st.fix[:n+len(rec)]
	copy(st.fix[i+len(rec):], st.fix[i:n])
	copy(st.fix[i:], rec)
}

// prune drops records no window can see any more (and that are folded).
func (p *Program) prune(st *State, cut int64) {
	i := p.oRecs
	for i < len(st.fix) && int64(st.fix[i]) <= cut && st.fix[i+1]&pendingBit == 0 {
		i += recLen(st.fix, i)
	}
	if i == p.oRecs {
		return
	}
	n := p.oRecs + copy(st.fix[p.oRecs:], st.fix[i:])
	st.fix = st.fix[:n]
	if cap(st.fix)-n > 64 && cap(st.fix) > 2*n {
		st.fix = append([]uint64(nil), st.fix...)
	}
}

// compactStrings drops pool strings no boxed value refers to.
func (p *Program) compactStrings(st *State) {
	if len(st.strs) < 16 || len(st.strs) < 2*int(st.live) {
		return
	}
	remap := make([]int32, len(st.strs))
	for i := range remap {
		remap[i] = -1
	}
	var kept []string
	fix := func(b *uint64) {
		if !inPool(*b) {
			return
		}
		old := *b >> 5
		if remap[old] < 0 {
			remap[old] = int32(len(kept))
			kept = append(kept, st.strs[old])
		}
		*b = *b&tagMask | uint64(remap[old])<<5
	}
	cache := p.cacheOf(st)
	for i := range cache {
		fix(&cache[i])
	}
	acc := p.accOf(st)
	for _, a := range p.aggs {
		if a.kind != akRun {
			continue
		}
		switch a.fn {
		case rule.FnFirst, rule.FnLast:
			fix(&acc[a.acc+1])
		case rule.FnMin, rule.FnMax:
			fix(&acc[a.acc])
		}
	}
	recs := p.recsOf(st)
	for i := 0; i < len(recs); i += recLen(recs, i) {
		for _, f := range p.feats {
			if f.enc != encBox {
				continue
			}
			if ok, vals := p.featVals(recs, i, f.idx); ok {
				for k := range vals {
					fix(&vals[k])
				}
			}
		}
	}
	st.strs = kept
	st.live = int32(len(kept))
}

// Serialisation.

// stateVersion 3: exact decimals (boxed words of coefficient and scale,
// integer counts, sums as coefficient and scale) replaced float64.
// 4: objects and lists in events exist and are counted (records of 3
// were extracted reading them as null), so older states are not reused:
// the engine replays the log.
const stateVersion = 4

// MarshalBinary encodes the state for a snapshot. The encoding carries
// the program's fingerprint; a state only loads into the same program.
func (st *State) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+8*len(st.fix))
	b = append(b, stateVersion)
	b = binary.LittleEndian.AppendUint64(b, st.fp)
	b = binary.AppendVarint(b, st.now)
	b = binary.AppendVarint(b, st.nextDue)
	flag := byte(0)
	if st.inited {
		flag = 1
	}
	b = append(b, flag)
	b = binary.AppendUvarint(b, uint64(st.live))
	b = binary.AppendUvarint(b, uint64(st.pend))
	words := func(ws []uint64) {
		b = binary.AppendUvarint(b, uint64(len(ws)))
		for _, w := range ws {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	words(st.fix)
	b = binary.AppendUvarint(b, uint64(len(st.sets)))
	for _, s := range st.sets {
		words(s)
	}
	b = binary.AppendUvarint(b, uint64(len(st.strs)))
	for _, s := range st.strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

var errShort = errors.New("eval: truncated state encoding")

// UnmarshalBinary decodes a snapshot made by MarshalBinary. Use
// Program.Adopt to check that it belongs to the program at hand.
func (st *State) UnmarshalBinary(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errShort
		}
	}()
	if len(b) < 9 || b[0] != stateVersion {
		return fmt.Errorf("eval: unknown state encoding version")
	}
	pos := 1
	st.fp = binary.LittleEndian.Uint64(b[pos:])
	pos += 8
	varint := func() int64 {
		v, n := binary.Varint(b[pos:])
		if n <= 0 {
			panic(errShort)
		}
		pos += n
		return v
	}
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			panic(errShort)
		}
		pos += n
		return v
	}
	words := func() []uint64 {
		n := int(uvarint())
		if n == 0 {
			return nil
		}
		if n > (len(b)-pos)/8 {
			panic(errShort)
		}
		ws := make([]uint64, n)
		for i := range ws {
			ws[i] = binary.LittleEndian.Uint64(b[pos:])
			pos += 8
		}
		return ws
	}
	st.now = varint()
	st.nextDue = varint()
	st.inited = b[pos] == 1
	pos++
	st.live = int32(uvarint())
	st.pend = int32(uvarint())
	st.fix = words()
	if n := int(uvarint()); n > 0 {
		st.sets = make([][]uint64, n)
		for i := range st.sets {
			st.sets[i] = words()
		}
	} else {
		st.sets = nil
	}
	if n := int(uvarint()); n > 0 {
		st.strs = make([]string, n)
		for i := range st.strs {
			l := int(uvarint())
			st.strs[i] = string(b[pos : pos+l])
			pos += l
		}
	} else {
		st.strs = nil
	}
	if pos != len(b) {
		return fmt.Errorf("eval: %d trailing bytes in state encoding", len(b)-pos)
	}
	return nil
}

// Adopt checks that a decoded state belongs to this program (same
// definitions and time zone). A state from another program must be
// rebuilt by replaying the profile's events.
func (p *Program) Adopt(st *State) error {
	if st.fp != p.fp {
		return fmt.Errorf("eval: state was built by another definition set (fingerprint %x, program %x); replay the profile's events", st.fp, p.fp)
	}
	if len(st.fix) < p.oRecs || len(st.sets) != p.nSets {
		return fmt.Errorf("eval: state layout does not match the program")
	}
	return nil
}

// Clone returns an independent copy.
func (st *State) Clone() *State {
	c := *st
	c.fix = append([]uint64(nil), st.fix...)
	c.strs = append([]string(nil), st.strs...)
	if st.sets != nil {
		c.sets = make([][]uint64, len(st.sets))
		for i, s := range st.sets {
			c.sets[i] = append([]uint64(nil), s...)
		}
	}
	return &c
}

// Fingerprint identifies the program's definitions and time zone; a
// snapshot taken under one fingerprint loads only into a program with
// the same one (the engine can store it next to snapshots to know when
// states must be rebuilt).
func (p *Program) Fingerprint() uint64 { return p.fp }

// Rebuild makes a profile's state from scratch: it applies events in the
// given order (arrival order, e.g. by log sequence; any time order is
// fine) and advances to now. This is the recompute after a definition
// edit; it returns the state and the memberships and traits it holds as
// one Result relative to the empty profile. Event filters that read
// profile traits read them as each event arrived, rebuilt from the events
// as Naive does.
func (p *Program) Rebuild(events []*kiln.Event, prof *Profile, now time.Time) (*State, Result) {
	return p.rebuildAt(events, nil, prof, now)
}

// rebuildAt is Rebuild with the traits each event's filters read given
// (see NaiveAt).
func (p *Program) rebuildAt(events []*kiln.Event, eventTraits []map[string]any, prof *Profile, now time.Time) (*State, Result) {
	if eventTraits == nil && p.filterTraits {
		eventTraits = replayTraits(events)
	}
	st := p.NewState()
	var t0 time.Time
	if len(events) > 0 {
		t0 = events[0].Timestamp
		for _, ev := range events[1:] {
			if ev.Timestamp.Before(t0) {
				t0 = ev.Timestamp
			}
		}
		if now.Before(t0) {
			t0 = now
		}
	} else {
		t0 = now
	}
	// Replaying at each event's own time keeps the running clock
	// monotonic and lets windows prune as they go.
	clock := t0
	for i, ev := range events {
		if ev.Timestamp.After(clock) && !ev.Timestamp.After(now) {
			clock = ev.Timestamp
		}
		if eventTraits != nil {
			// The filters read the traits as the event arrived;
			// conditions read prof, below.
			p.Apply(st, &Profile{Traits: eventTraits[i], Static: prof.Static}, ev, clock)
		} else {
			p.Apply(st, prof, ev, clock)
		}
	}
	if eventTraits != nil {
		p.ApplyProfile(st, prof, now)
	} else {
		p.Advance(st, prof, now)
	}
	if cap(st.fix) > len(st.fix) {
		// Rebuilt states are many and long-lived: drop the growth slack.
		st.fix = append(make([]uint64, 0, len(st.fix)), st.fix...)
	}
	var res Result
	for _, s := range p.segs {
		if in, _ := p.Member(st, s.name); in {
			res.Changed = append(res.Changed, p.change(st, prof, s, true, st.now))
		}
	}
	empty := p.emptyCache
	cache := p.cacheOf(st)
	for _, i := range p.traits {
		if cache[i] != empty[i] {
			res.Traits = append(res.Traits, TraitChange{Trait: p.aggs[i].name, Old: p.nodeValue(st, i, empty[i]), New: p.nodeValue(st, i, cache[i])})
		}
	}
	if st.nextDue != 0 {
		res.NextDue = time.UnixMilli(st.nextDue)
	}
	return st, res
}
