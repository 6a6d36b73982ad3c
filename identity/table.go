package identity

import (
	"encoding/binary"
	"hash/maphash"
)

// table interns (tag, string) keys, each with a small fixed-size record,
// and names each entry by its arena offset (a ref). It is the resolver's
// index: a few million keys must fit in little memory and cost the garbage
// collector nothing, so entries live in pointer-free byte chunks and the
// hash slots are plain integers (a Go map[string]uint32 plus a record slice
// needs about twice the memory and holds a pointer per key to scan).
//
// Entry layout, 4-byte aligned: record (hdr bytes), tag byte, uvarint
// length, key bytes. slots is an open-addressing (linear probing) table of
// uint64: high 32 bits a hash fragment to skip most wrong candidates, low
// 32 bits the entry's ref + 1 (0 is empty). A look-up touches one slot and
// one entry, key and record together: two cache misses on a big index,
// which is what resolution time is made of.
//
// Refs grow with insertion order, so "added since mark m" is "ref >= m".
type table struct {
	seed   maphash.Seed
	hdr    int
	chunks [][]byte
	n      int
	slots  []uint64
	mask   uint64
}

// ref names a table entry: chunk<<chunkBits | position.
type ref = uint32

const (
	chunkBits = 20 // 1 MiB chunks: growth never copies the whole arena
	chunkSize = 1 << chunkBits
	maxChunks = 1<<(32-chunkBits) - 1 // so no ref is none
	maxKeyLen = chunkSize / 2
	none      = ^uint32(0)
)

func newTable(hdr int) *table {
	t := &table{seed: maphash.MakeSeed(), hdr: hdr}
	t.rehash(1 << 10)
	return t
}

var zeroRec [32]byte

// Len returns the number of entries.
func (t *table) Len() int { return t.n }

func (t *table) hash(tag byte, s string) uint64 {
	return maphash.String(t.seed, s) ^ (uint64(tag) * 0x9e3779b97f4a7c15)
}

func (t *table) hashBytes(tag byte, b []byte) uint64 {
	return maphash.Bytes(t.seed, b) ^ (uint64(tag) * 0x9e3779b97f4a7c15)
}

// Find returns the entry with this key, or none.
func (t *table) Find(tag byte, s string) ref {
	var buf [maxPacked]byte
	if pt, pb, ok := pack(&buf, tag, s); ok {
		return t.find(pt, pb)
	}
	h := t.hash(tag, s)
	frag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		sl := t.slots[i]
		if sl == 0 {
			return none
		}
		if sl>>32 == frag {
			o := uint32(sl) - 1
			if kt, ks, _ := t.key(o); kt == tag && string(ks) == s {
				return o
			}
		}
	}
}

// find looks up a key in its stored (packed) form.
func (t *table) find(tag byte, b []byte) ref {
	h := t.hashBytes(tag, b)
	frag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		sl := t.slots[i]
		if sl == 0 {
			return none
		}
		if sl>>32 == frag {
			o := uint32(sl) - 1
			if kt, ks, _ := t.key(o); kt == tag && string(ks) == string(b) {
				return o
			}
		}
	}
}

// key decodes entry o's key, and returns the entry's size with padding.
func (t *table) key(o ref) (tag byte, key []byte, size int) {
	b := t.chunks[o>>chunkBits][int(o&(chunkSize-1))+t.hdr:]
	tag = b[0]
	l, w := uint64(b[1]), 1
	if l >= 0x80 {
		l, w = binary.Uvarint(b[1:])
	}
	key = b[1+w : 1+w+int(l)]
	return tag, key, (t.hdr + 1 + w + int(l) + 3) &^ 3
}

// Tag returns entry o's tag.
func (t *table) Tag(o ref) byte {
	return t.chunks[o>>chunkBits][int(o&(chunkSize-1))+t.hdr] &^ (tagUUID | tagHex)
}

// Key returns entry o's tag and key as a string.
func (t *table) Key(o ref) (byte, string) {
	tag, b, _ := t.key(o)
	return unpack(tag, b)
}

// rec returns entry o's record, to read or write in place.
func (t *table) rec(o ref) []byte {
	p := int(o & (chunkSize - 1))
	return t.chunks[o>>chunkBits][p : p+t.hdr : p+t.hdr]
}

// Add inserts a key known to be absent, with a zero record, and returns it.
func (t *table) Add(tag byte, s string) ref {
	if len(s) > maxKeyLen {
		panic("identity: key too long") // callers bound values to maxValueLen
	}
	if tag&(tagUUID|tagHex) != 0 {
		panic("identity: table tags are 0 to 63")
	}
	var buf [maxPacked]byte
	if pt, pb, ok := pack(&buf, tag, s); ok {
		return add(t, pt, pb, t.hashBytes(pt, pb))
	}
	return add(t, tag, s, t.hash(tag, s))
}

// add stores a key in its stored form, with its hash.
func add[K string | []byte](t *table, tag byte, s K, h uint64) ref {
	// Keep the load under 13/16: the hash fragments make probing past a
	// wrong slot cheap, and 3M keys then fit 4M slots rather than 8M.
	if uint64(t.n+1)*16 > uint64(len(t.slots))*13 {
		t.rehash(2 * len(t.slots))
	}
	need := (t.hdr + 1 + binary.MaxVarintLen32 + len(s) + 3) &^ 3
	if len(t.chunks) == 0 || len(t.chunks[len(t.chunks)-1])+need > cap(t.chunks[len(t.chunks)-1]) {
		if len(t.chunks) >= maxChunks {
			panic("identity: index arena over 4 GiB")
		}
		size := 4 << 10 // small resolvers (tests, small shops) stay small
		if len(t.chunks) > 0 {
			size = min(chunkSize, 2*cap(t.chunks[len(t.chunks)-1]))
		}
		t.chunks = append(t.chunks, make([]byte, 0, max(size, need)))
	}
	c := len(t.chunks) - 1
	b := t.chunks[c]
	o := uint32(c)<<chunkBits | uint32(len(b))
	b = append(b, zeroRec[:t.hdr]...)
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	t.chunks[c] = b
	t.n++
	t.place(h, o)
	return o
}

func (t *table) place(h uint64, o ref) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = h&^0xffffffff | uint64(o+1)
			return
		}
	}
}

// each calls fn for every entry in insertion order.
func (t *table) each(fn func(o ref)) {
	for c, b := range t.chunks {
		for p := 0; p < len(b); {
			o := uint32(c)<<chunkBits | uint32(p)
			_, _, size := t.key(o)
			fn(o)
			p += size
		}
	}
}

func (t *table) rehash(size int) {
	t.slots = make([]uint64, size)
	t.mask = uint64(size - 1)
	t.each(func(o ref) {
		tag, b, _ := t.key(o)
		t.place(t.hashBytes(tag, b), o)
	})
}

// mark is a table position to roll back to.
type mark struct {
	end ref // entries at or after end were added since
	n   int
}

// Mark returns the current position: every entry added later has a ref >= m.end.
func (t *table) Mark() mark {
	if len(t.chunks) == 0 {
		return mark{}
	}
	c := len(t.chunks) - 1
	return mark{end: uint32(c)<<chunkBits | uint32(len(t.chunks[c])), n: t.n}
}

// Truncate forgets entries added since m (the resolver's rollback). It
// rebuilds the slots, which is linear in the table size: rollback is the
// rare path.
func (t *table) Truncate(m mark) {
	if m.n == t.n {
		return
	}
	if m.n == 0 {
		t.chunks = t.chunks[:0]
	} else {
		c := int(m.end >> chunkBits)
		t.chunks[c] = t.chunks[c][:m.end&(chunkSize-1)]
		clear(t.chunks[c+1:])
		t.chunks = t.chunks[:c+1]
	}
	t.n = m.n
	size := len(t.slots)
	for size > 1<<10 && uint64(t.n)*8 < uint64(size)*3 { // shrink while under 3/8 full
		size /= 2
	}
	t.rehash(size)
}

// Bytes returns the memory the table holds (arena chunks and slots).
func (t *table) Bytes() int {
	n := len(t.slots) * 8
	for _, c := range t.chunks {
		n += cap(c)
	}
	return n
}
