package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
)

// Snapshots make a restart's cost independent of the log's length: the
// engine's in-memory state (the identity index, the models' traits, each
// profile's evaluation state and traits, the models' purchase histories)
// is written at a checkpoint, and a restart loads it and replays only the
// events after it. The index and the model traits do not depend on the
// definitions: they are used whenever the snapshot describes the store,
// and the profiles that the log and merges touched since are read again
// from the store (see catchUpSnapshot). A snapshot is
// written in parts and made current by a header committed with the
// engine clock in one transaction, so a half-written one is never read.
//
// A snapshot is used only when it still describes the store: the same
// definitions (the program's fingerprint), no unmerge, deletion or static
// list edit since (those clear the header in their own transaction before
// they change anything). Merges since it are replayed like live ones: the
// absorbed profile is dropped and the survivor rebuilt from its events.
// When the models were refitted since, every profile is settled with its
// stored model traits. Otherwise the log is replayed from the start, as
// before snapshots existed: slower, never wrong.

// snapshotBlob names the current snapshot's header.
const snapshotBlob = "snapshot"

// snapshotPart is the size (before compression) at which a part is
// written. Each part costs the store a sync: on a slow disk those, not the
// bytes, were most of a snapshot's time, so parts are large.
var snapshotPart = 16 << 20 // a variable for tests

// snapshotFormat is the version of the snapshot encoding written; a
// snapshot of a version not read (see formatRead) is not used: the log is
// replayed instead. Format 4 compresses each part with S2 (a 4 MB part of
// states becomes about 1 MB in 25 ms: a snapshot is written and read in a
// quarter of the bytes, where the disk, not the CPU, was the limit); 3 is
// the same records uncompressed.
const snapshotFormat = 4

func formatRead(f int) bool { return f == 3 || f == 4 }

// partBytes returns a stored part's records, decompressed if the
// snapshot's format says so. The result does not alias part when it
// was compressed.
func partBytes(h snapshotHeader, part []byte) ([]byte, error) {
	if h.Format < 4 {
		return part, nil
	}
	b, err := s2.Decode(nil, part)
	if err != nil {
		return nil, fmt.Errorf("decompressing a part: %w", err)
	}
	return b, nil
}

type snapshotHeader struct {
	Format      int       `json:"format"`
	Gen         int64     `json:"gen"`                   // 0: none ever written
	Invalid     bool      `json:"invalid"`               // cleared: the store moved outside the log since
	Seq         int64     `json:"seq"`                   // events processed
	Clock       int64     `json:"clock"`                 // engine clock, Unix ms
	Fingerprint uint64    `json:"fingerprint"`           // of the program; 0 without definitions
	Merges      int64     `json:"merges"`                // the highest merge id reflected
	Models      time.Time `json:"models"`                // FittedAt of the models the traits came from
	Purchases   bool      `json:"purchases"`             // the models' purchase histories are in it
	ModelTraits bool      `json:"modelTraits,omitempty"` // the models' traits per profile are in it
	Parts       int64     `json:"parts"`
	Profiles    int       `json:"profiles"`
}

// Record kinds in a part. The identity index comes first, in records of
// at most snapshotPart bytes, so that a start reads it before the states.
// A reader skips kinds it does not know.
const (
	recState     = 1 // pid, due, state, traits
	recPurchases = 2 // pid, purchase history
	recIdentity  = 3 // "", a piece of the identity index (identity.Resolver.AppendSnapshot)
	recModel     = 4 // pid, model traits (after the index, before the states)
)

// Snapshot writes the engine's state as of now: what time did up to now
// is recorded first, so the snapshot and the clock agree. A graceful stop
// takes one, so the next start replays nothing.
func (e *Engine) Snapshot(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || e.segsDirty || e.res == nil {
		return nil // not started, or about to rebuild: nothing trustworthy to write
	}
	start := time.Now()
	now := e.evalNow()
	if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
		return err
	}
	old, err := e.snapshotHeader(ctx)
	if err != nil {
		return err
	}
	ms, err := e.st.MergesAfter(ctx, old.Merges)
	if err != nil {
		return err
	}
	// Generations grow with time too, so a store started afresh beside an
	// old one's snapshot files never reads their parts as its own.
	h := snapshotHeader{Format: snapshotFormat, Gen: max(old.Gen+1, time.Now().UnixMilli()), Seq: e.processed.Load(), Clock: now.UnixMilli(), Merges: old.Merges, Profiles: len(s.states)}
	if len(ms) > 0 {
		h.Merges = ms[len(ms)-1].ID
	}
	if s.prog != nil {
		h.Fingerprint = s.prog.Fingerprint()
	}
	if e.models != nil {
		h.Purchases = true
		if e.models.report != nil {
			h.Models = e.models.report.FittedAt
		}
	}
	w := partWriter{ctx: ctx, st: e.st, gen: h.Gen}
	idx, err := e.res.AppendSnapshot(nil)
	if err != nil {
		return err
	}
	for len(idx) > 0 {
		piece := idx[:min(len(idx), snapshotPart)]
		idx = idx[len(piece):]
		w.record(recIdentity, "", func(b []byte) []byte { return append(b, piece...) })
		if err := w.flush(false); err != nil {
			return err
		}
	}
	if e.models != nil {
		h.ModelTraits = true
		for pid, t := range e.models.traits {
			b, err := appendTraits(nil, t)
			if err != nil {
				return fmt.Errorf("snapshot of %s: model traits: %w", pid, err)
			}
			w.record(recModel, pid, func(out []byte) []byte { return append(out, b...) })
			if err := w.flush(false); err != nil {
				return err
			}
		}
	}
	if err := w.flush(true); err != nil {
		return err
	}
	// The states and purchase histories, the bulk of it, are encoded on
	// every CPU (the engine waits for the snapshot); their order does not
	// matter, only that they follow the index and the model traits.
	pids := slices.Collect(maps.Keys(s.states))
	err = w.parallel(len(pids), func(i int, b []byte) ([]byte, error) {
		pid, ps := pids[i], s.states[pids[i]]
		st, err := ps.st.MarshalBinary()
		if err != nil {
			return nil, err
		}
		traits, err := appendTraits(nil, ps.prof.Traits)
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: traits: %w", pid, err)
		}
		return appendRecord(b, recState, pid, func(b []byte) []byte {
			b = binary.AppendVarint(b, ps.due)
			b = appendBytes(b, st)
			return appendBytes(b, traits)
		}), nil
	})
	if err != nil {
		return err
	}
	if e.models != nil {
		cust := slices.Collect(maps.Keys(e.models.cust))
		err = w.parallel(len(cust), func(i int, b []byte) ([]byte, error) {
			return appendRecord(b, recPurchases, cust[i], e.models.cust[cust[i]].appendBinary), nil
		})
		if err != nil {
			return err
		}
	}
	h.Parts = w.part
	raw, _ := json.Marshal(h)
	if err := e.st.ApplyResolution(ctx, store.Resolution{Blobs: []store.Blob{{Name: snapshotBlob, Data: raw}}, Checkpoints: clockAt(h.Clock)}); err != nil {
		return fmt.Errorf("recording snapshot %d: %w", h.Gen, err)
	}
	e.snapGen, e.snapSeq, e.snapAt = h.Gen, h.Seq, time.Now()
	e.moveClock(now)
	if err := e.st.DropSnapshots(ctx, h.Gen); err != nil {
		e.log.Warn("dropping old snapshots", "err", err)
	}
	e.log.Info("engine state snapshot written", "generation", h.Gen, "seq", h.Seq, "profiles", h.Profiles,
		"bytes", w.bytes, "parts", h.Parts, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// invalidateSnapshot clears the snapshot header before an operation that
// changes profiles outside the log (unmerge, deletion, static lists): if
// it then commits, the snapshot no longer describes the store.
func (e *Engine) invalidateSnapshot(ctx context.Context) error {
	// The header is read even when this process neither wrote nor used
	// the snapshot: a later start may still read its identity index, or
	// its states if the definitions come back to the same.
	h, err := e.snapshotHeader(ctx)
	if err != nil || h.Gen == 0 || h.Invalid {
		return err
	}
	h.Invalid = true
	raw, _ := json.Marshal(h)
	if err := e.st.ApplyResolution(ctx, store.Resolution{Blobs: []store.Blob{{Name: snapshotBlob, Data: raw}}}); err != nil {
		return fmt.Errorf("clearing the engine snapshot: %w", err)
	}
	e.snapGen = 0
	return nil
}

func (e *Engine) snapshotHeader(ctx context.Context) (snapshotHeader, error) {
	var h snapshotHeader
	raw, err := e.st.GetBlob(ctx, snapshotBlob)
	if err != nil || raw == nil {
		return h, err
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return snapshotHeader{}, fmt.Errorf("reading the snapshot header: %w", err)
	}
	return h, nil
}

// loadSnapshot reads the current snapshot if it describes the store (see
// above): states for prog, the purchase histories, and the header. ok is
// false when the log must be replayed from the start instead.
func (e *Engine) loadSnapshot(ctx context.Context, prog *eval.Program, static map[string][]string) (h snapshotHeader, from replayFrom, ok bool, err error) {
	if h, err = e.snapshotHeader(ctx); err != nil || h.Gen == 0 || h.Invalid {
		return h, from, false, err
	}
	why := ""
	var fp uint64
	if prog != nil {
		fp = prog.Fingerprint()
	}
	switch {
	case !formatRead(h.Format):
		why = fmt.Sprintf("it is in format %d, this version reads 3 and 4", h.Format)
	case h.Fingerprint != fp:
		why = "the definitions changed since"
	case h.Seq > e.processed.Load():
		why = "it is ahead of the processed log"
	case e.models != nil && !h.Purchases:
		why = "it was taken before the customer models were fitted"
	}
	if why != "" {
		e.log.Info("not using the engine snapshot; replaying the whole log", "generation", h.Gen, "why", why)
		return h, from, false, nil
	}
	var dec *decodedSnapshot
	if pre := e.pre; pre != nil && pre.gen == h.Gen && pre.prog == prog {
		dec = pre // decoded while the index and the models loaded
		e.preloaded = true
	} else {
		dec = e.decodeSnapshot(ctx, h, prog, static)
	}
	e.pre = nil
	from = replayFrom{prog: prog, static: static, after: h.Seq, states: dec.states, cust: dec.cust}
	err = dec.err
	if err != nil {
		e.log.Warn("the engine snapshot cannot be read; replaying the whole log", "generation", h.Gen, "err", err)
		return h, replayFrom{}, false, nil
	}
	return h, from, true, nil
}

func decodeState(prog *eval.Program, b []byte, names map[string]string) (*pstate, error) {
	due, n := binary.Varint(b)
	if n <= 0 {
		return nil, errShortRecord
	}
	b = b[n:]
	stb, b, err := readBytes(b)
	if err != nil {
		return nil, err
	}
	traits, _, err := readBytes(b)
	if err != nil {
		return nil, err
	}
	ps := &pstate{st: &eval.State{}, due: due}
	if err := ps.st.UnmarshalBinary(stb); err != nil {
		return nil, err
	}
	if err := prog.Adopt(ps.st); err != nil {
		return nil, err
	}
	if ps.prof.Traits, err = readTraits(traits, names); err != nil {
		return nil, err
	}
	return ps, nil
}

// restoreSnapshotted finishes a start from a snapshot after its tail was
// replayed: merges since the snapshot are applied as live ones were, and
// profiles whose model traits may have moved are settled.
// It returns the profiles that changed since the snapshot.
func (e *Engine) restoreSnapshotted(ctx context.Context, h snapshotHeader, r *replayed, prog *eval.Program, static map[string][]string, upTo int64, now time.Time) (map[string]bool, error) {
	ms, err := e.st.MergesAfter(ctx, h.Merges)
	if err != nil {
		return nil, err
	}
	gone := map[string]bool{}
	for _, m := range ms {
		gone[m.From] = true
	}
	var rebuild []string
	for _, m := range ms {
		if !gone[m.Into] && !slices.Contains(rebuild, m.Into) {
			rebuild = append(rebuild, m.Into)
		}
	}
	for pid := range gone {
		delete(r.states, pid)
		delete(r.cust, pid)
		r.touched[pid] = true // gone: its memberships are checked
	}
	for _, pid := range rebuild {
		evs, err := e.profileEvents(ctx, pid, upTo)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(evs, func(a, b kiln.Event) int { return int(a.Seq - b.Seq) })
		m := &models{cust: r.cust}
		delete(r.cust, pid)
		for i := range evs {
			m.record(pid, &evs[i])
		}
		r.touched[pid] = true
		if prog == nil {
			continue
		}
		ps := &pstate{st: prog.NewState()}
		ps.prof.Static = static[pid]
		for i := range evs {
			applyTraits(ps, &evs[i])
			prog.Apply(ps.st, &ps.prof, &evs[i], now)
		}
		r.states[pid] = ps
		r.touched[pid] = true
	}
	if prog == nil {
		return r.touched, nil
	}
	// Untouched profiles are as of the snapshot: those with a window
	// boundary since are moved to now (their transitions are recorded
	// already), and all of them if the models were refitted since.
	settle := r.touched
	refitted := e.models != nil && e.models.report != nil && !e.models.report.FittedAt.Equal(h.Models)
	for pid, ps := range r.states {
		if refitted || (ps.due != 0 && ps.due <= now.UnixMilli()) {
			settle[pid] = true
		}
	}
	e.settleAll(prog, r.states, settle, now)
	return settle, nil
}

// partWriter gathers records into parts of about snapshotPart bytes.
type partWriter struct {
	ctx   context.Context
	st    store.Store
	gen   int64
	part  int64
	buf   []byte
	bytes int64
}

func (w *partWriter) record(kind byte, pid string, body func([]byte) []byte) {
	w.buf = appendRecord(w.buf, kind, pid, body)
}

func appendRecord(b []byte, kind byte, pid string, body func([]byte) []byte) []byte {
	b = append(b, kind)
	b = appendBytes(b, []byte(pid))
	// The body's length is not known before it is written: reserve a
	// fixed four bytes for it.
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = body(b)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// parallel encodes records 0..n-1 with enc on every CPU, each worker
// filling parts of its own, which are written in the order they fill up.
// w's own buffer must be flushed before.
func (w *partWriter) parallel(n int, enc func(i int, b []byte) ([]byte, error)) error {
	nw := runtime.GOMAXPROCS(0)
	full := make(chan []byte, nw)
	errs := make([]error, nw)
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for k := range nw {
		wg.Go(func() {
			var b []byte
			for i := k; i < n; i += nw {
				var err error
				if b, err = enc(i, b); err != nil {
					errs[k] = err
					cancel()
					return
				}
				if len(b) >= snapshotPart {
					select {
					case full <- s2.Encode(nil, b):
					case <-ctx.Done():
						return
					}
					b = nil
				}
			}
			if len(b) > 0 {
				select {
				case full <- s2.Encode(nil, b):
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { wg.Wait(); close(full) }()
	var werr error
	for b := range full {
		if werr != nil {
			continue // drain, so the workers finish
		}
		if werr = w.st.PutSnapshotPart(w.ctx, w.gen, w.part, b); werr != nil {
			cancel()
			continue
		}
		w.part++
		w.bytes += int64(len(b))
	}
	if werr != nil {
		return werr
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return w.ctx.Err() // workers stop quietly when it ends: the parts are not all written
}

func (w *partWriter) flush(final bool) error {
	if len(w.buf) == 0 || (!final && len(w.buf) < snapshotPart) {
		return nil
	}
	c := s2.Encode(nil, w.buf)
	if err := w.st.PutSnapshotPart(w.ctx, w.gen, w.part, c); err != nil {
		return err
	}
	w.part++
	w.bytes += int64(len(c))
	w.buf = w.buf[:0]
	return nil
}

var (
	errShortRecord = errors.New("truncated snapshot record")
	errPrefixRead  = errors.New("the part of the snapshot wanted is read")
)

func readRecords(b []byte, fn func(kind byte, pid string, body []byte) error) error {
	for len(b) > 0 {
		kind := b[0]
		pid, rest, err := readBytes(b[1:])
		if err != nil {
			return err
		}
		if len(rest) < 4 {
			return errShortRecord
		}
		n := int(binary.LittleEndian.Uint32(rest))
		if len(rest) < 4+n {
			return errShortRecord
		}
		if err := fn(kind, string(pid), rest[4:4+n]); err != nil {
			return err
		}
		b = rest[4+n:]
	}
	return nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func readBytes(b []byte) (v, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errShortRecord
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// snapshotUsable says whether h's identity index and parts describe the
// store at all (whether its states fit the definitions is another matter,
// see loadSnapshot).
func (e *Engine) snapshotUsable(h snapshotHeader) bool {
	return h.Gen != 0 && !h.Invalid && formatRead(h.Format) && h.Seq <= e.processed.Load()
}

// loadIndexSnapshot loads the identity index from snapshot h, as of the
// snapshot (see catchUpSnapshot for what came after). ok is false when
// the snapshot holds no index (one written before it did) or it cannot be
// read; the caller then loads every stored identity.
func (e *Engine) loadIndexSnapshot(ctx context.Context, h snapshotHeader, r *identity.Resolver) (ok bool, err error) {
	start := time.Now()
	var idx []byte
	err = e.st.ScanSnapshot(ctx, h.Gen, func(part []byte) error {
		part, err := partBytes(h, part)
		if err != nil {
			return err
		}
		if len(part) == 0 || part[0] != recIdentity {
			return errPrefixRead // the index comes first; the rest need not be read here
		}
		return readRecords(part, func(kind byte, _ string, b []byte) error {
			if kind == recIdentity {
				idx = append(idx, b...)
			}
			return nil
		})
	})
	if err != nil && err != errPrefixRead {
		return false, err
	}
	if len(idx) == 0 {
		return false, nil
	}
	if err := r.LoadSnapshot(idx); err != nil {
		e.log.Warn("the identity index in the engine snapshot cannot be read; loading it from the store", "generation", h.Gen, "err", err)
		return false, nil
	}
	e.log.Info("identity index loaded from the engine snapshot", "generation", h.Gen, "identifiers", r.Stats().Identifiers, "took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// snapshotModelTraits reads the models' traits per profile from snapshot
// h, which follow the index in its parts; nil if it has none.
func (e *Engine) snapshotModelTraits(ctx context.Context, h snapshotHeader) (map[string]map[string]any, error) {
	if !h.ModelTraits {
		return nil, nil
	}
	start := time.Now()
	out := map[string]map[string]any{}
	names := map[string]string{}
	err := e.st.ScanSnapshot(ctx, h.Gen, func(part []byte) error {
		part, err := partBytes(h, part)
		if err != nil {
			return err
		}
		done := false
		err = readRecords(part, func(kind byte, pid string, b []byte) error {
			switch kind {
			case recModel:
				t, err := readTraits(b, names)
				if err != nil {
					return fmt.Errorf("model traits of %s: %w", pid, err)
				}
				out[pid] = t
			case recState, recPurchases:
				done = true
			}
			return nil
		})
		if err == nil && done {
			err = errPrefixRead
		}
		return err
	})
	if err != nil && err != errPrefixRead {
		return nil, err
	}
	e.log.Info("model traits loaded from the engine snapshot", "generation", h.Gen, "profiles", len(out), "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// catchUpSnapshot brings what was loaded from snapshot h (the identity
// index, and the model traits if fromSnap) up to the processed log: the
// profiles that events after the snapshot touched, and those that merges
// since it made or took away, are read again from the store (an identity
// loaded again ends on its stored profile).
func (e *Engine) catchUpSnapshot(ctx context.Context, h snapshotHeader, r *identity.Resolver, m *models, traitsFromSnap bool) error {
	start := time.Now()
	touched := map[string]bool{}
	ms, err := e.st.MergesAfter(ctx, h.Merges)
	if err != nil {
		return err
	}
	for _, mg := range ms {
		touched[mg.Into] = true
		touched[mg.From] = true // gone: its model traits go too
	}
	seen := map[kiln.Identifier]bool{}
	tail := 0
	err = e.st.ScanLog(ctx, h.Seq, e.processed.Load(), func(evs []kiln.Event) error {
		for i := range evs {
			tail++
			ids := e.x.Extract(&evs[i])
			if a := kiln.ParseIdentifier(evs[i].Anchor); a.Value != "" {
				ids = append(ids, a)
			}
			for _, id := range ids {
				if seen[id] {
					continue
				}
				seen[id] = true
				pid, err := e.st.ProfileFor(ctx, id)
				if store.IsNotFound(err) {
					continue // refused, blocked or suppressed: not in the index
				}
				if err != nil {
					return err
				}
				touched[pid] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(touched) == 0 {
		return nil
	}
	for pid := range touched {
		p, err := e.st.GetProfile(ctx, pid)
		if store.IsNotFound(err) {
			continue // merged away since
		}
		if err != nil {
			return err
		}
		for _, id := range p.Identities {
			if err := r.Load(id); err != nil {
				return err
			}
		}
	}
	if traitsFromSnap {
		pids := slices.Collect(maps.Keys(touched))
		cur, err := e.st.ModelTraitsOf(ctx, pids)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if t := cur[pid]; t != nil {
				m.traits[pid] = t
			} else {
				delete(m.traits, pid)
			}
		}
	}
	e.log.Info("engine snapshot brought up to the log", "generation", h.Gen, "events since", tail, "profiles read again", len(touched),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// decodedSnapshot is a snapshot's states (for prog) and purchase
// histories, decoded.
type decodedSnapshot struct {
	gen    int64
	prog   *eval.Program
	states map[string]*pstate
	cust   map[string]*purchases
	err    error
}

// preloadSnapshot decodes snapshot h's states while the identity index
// and the models load (see Run), if it is usable and taken with the
// stored definitions; loadSnapshot then takes them instead of reading
// the snapshot again. The rest of loadSnapshot's checks are made there.
func (e *Engine) preloadSnapshot(ctx context.Context, h snapshotHeader, s *segments) *decodedSnapshot {
	if s.prog == nil || h.Fingerprint != s.prog.Fingerprint() {
		return nil
	}
	return e.decodeSnapshot(ctx, h, s.prog, s.static)
}

// decodeSnapshot reads and decodes snapshot h's states and purchases.
func (e *Engine) decodeSnapshot(ctx context.Context, h snapshotHeader, prog *eval.Program, static map[string][]string) *decodedSnapshot {
	res := &decodedSnapshot{gen: h.Gen, prog: prog, states: map[string]*pstate{}, cust: map[string]*purchases{}}
	// Parts are decoded on every CPU while the next is read; each worker
	// fills maps of its own, merged at the end.
	type decoded struct {
		states map[string]*pstate
		cust   map[string]*purchases
		err    error
	}
	nw := runtime.GOMAXPROCS(0)
	work := make(chan []byte, nw)
	parts := int64(0)
	outs := make([]decoded, nw)
	var wg sync.WaitGroup
	for w := range nw {
		outs[w] = decoded{states: map[string]*pstate{}, cust: map[string]*purchases{}}
		wg.Go(func() {
			out := &outs[w]
			names := map[string]string{} // trait names, shared by this worker's profiles
			for part := range work {
				if out.err != nil {
					continue
				}
				if part, out.err = partBytes(h, part); out.err != nil {
					continue
				}
				out.err = readRecords(part, func(kind byte, pid string, b []byte) error {
					switch kind {
					case recState:
						if prog == nil {
							return nil
						}
						ps, err := decodeState(prog, b, names)
						if err != nil {
							return fmt.Errorf("profile %s: %w", pid, err)
						}
						ps.prof.Static = static[pid]
						out.states[pid] = ps
					case recPurchases:
						p := &purchases{}
						if err := p.unmarshalBinary(b); err != nil {
							return fmt.Errorf("purchases of %s: %w", pid, err)
						}
						out.cust[pid] = p
					}
					return nil
				})
			}
		})
	}
	err := e.st.ScanSnapshot(ctx, h.Gen, func(part []byte) error {
		parts++
		work <- bytes.Clone(part) // the store may reuse part
		return nil
	})
	close(work)
	wg.Wait()
	for _, out := range outs {
		if err == nil {
			err = out.err
		}
		maps.Copy(res.states, out.states)
		maps.Copy(res.cust, out.cust)
	}
	if err == nil && parts != h.Parts {
		err = fmt.Errorf("%d parts, the header says %d", parts, h.Parts)
	}
	res.err = err
	return res
}
