package identity

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The index is pointer-free arenas (see table), so a snapshot of it is
// those arenas as they are: references between entries are arena offsets
// and stay valid. Loading it copies the bytes and rebuilds the hash slots,
// which is linear in the entries and needs no parsing of rows: at a few
// million identifiers that is a fraction of a second, where loading each
// stored identity through Load takes seconds.

// snapshotVersion is the encoding's version; another is refused.
const snapshotVersion = 1

// AppendSnapshot appends the committed index to b. It fails with changes
// pending: they are neither committed nor thrown away yet.
func (r *Resolver) AppendSnapshot(b []byte) ([]byte, error) {
	if r.HasPending() {
		return nil, errPending("AppendSnapshot")
	}
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, uint64(r.linked))
	b = binary.AppendUvarint(b, uint64(r.live))
	b = r.ids.appendSnapshot(b)
	b = r.profs.appendSnapshot(b)
	return b, nil
}

// LoadSnapshot replaces the index with one written by AppendSnapshot.
func (r *Resolver) LoadSnapshot(b []byte) error {
	if r.HasPending() {
		return errPending("LoadSnapshot")
	}
	if len(b) == 0 || b[0] != snapshotVersion {
		return fmt.Errorf("identity: snapshot: unknown version")
	}
	b = b[1:]
	linked, b, err := uvarint(b)
	if err != nil {
		return err
	}
	live, b, err := uvarint(b)
	if err != nil {
		return err
	}
	ids, profs := newTable(identRecSize), newTable(profRecSize)
	if b, err = ids.loadSnapshot(b); err != nil {
		return fmt.Errorf("identity: snapshot: identifiers: %w", err)
	}
	if b, err = profs.loadSnapshot(b); err != nil {
		return fmt.Errorf("identity: snapshot: profiles: %w", err)
	}
	if len(b) != 0 {
		return fmt.Errorf("identity: snapshot: %d bytes after the end", len(b))
	}
	r.ids, r.profs = ids, profs
	r.linked, r.live = int(linked), int(live)
	r.journal = r.journal[:0]
	r.committed()
	return nil
}

var errShortSnapshot = errors.New("truncated")

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errShortSnapshot
	}
	return v, b[n:], nil
}

// appendSnapshot writes the entry count, then each chunk's length and bytes.
func (t *table) appendSnapshot(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(t.n))
	b = binary.AppendUvarint(b, uint64(len(t.chunks)))
	for _, c := range t.chunks {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// loadSnapshot reads what appendSnapshot wrote into an empty table and
// rebuilds its slots, checking that the entries are well formed and as
// many as said.
func (t *table) loadSnapshot(b []byte) ([]byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	nc, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	if nc > maxChunks {
		return nil, fmt.Errorf("%d chunks", nc)
	}
	t.chunks = make([][]byte, 0, nc)
	for range nc {
		var l uint64
		if l, b, err = uvarint(b); err != nil {
			return nil, err
		}
		if l > chunkSize || uint64(len(b)) < l || l%4 != 0 {
			return nil, fmt.Errorf("a chunk of %d bytes", l)
		}
		// New chunks are appended to only at the end: give the last
		// one room to grow, the others exactly their size.
		c := make([]byte, l, max(l, 4<<10))
		copy(c, b[:l])
		t.chunks = append(t.chunks, c)
		b = b[l:]
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	count := 0
	t.each(func(ref) { count++ })
	if uint64(count) != n {
		return nil, fmt.Errorf("%d entries, the snapshot says %d", count, n)
	}
	t.n = count
	size := 1 << 10
	for uint64(t.n)*16 > uint64(size)*13 {
		size *= 2
	}
	t.rehash(size)
	return b, nil
}

// check walks every chunk's entries, so that a damaged snapshot is an
// error here rather than a panic later.
func (t *table) check() error {
	for c, b := range t.chunks {
		p := 0
		for p < len(b) {
			q := p + t.hdr + 1
			if q >= len(b) {
				return fmt.Errorf("chunk %d: an entry cut short at %d", c, p)
			}
			l, w := binary.Uvarint(b[q:])
			if w <= 0 || uint64(len(b)-q-w) < l {
				return fmt.Errorf("chunk %d: an entry cut short at %d", c, p)
			}
			p += (t.hdr + 1 + w + int(l) + 3) &^ 3
		}
		if p != len(b) {
			return fmt.Errorf("chunk %d: the last entry runs past its end", c)
		}
	}
	return nil
}
