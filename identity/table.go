package identity

import (
	"encoding/binary"
	"hash/maphash"
)

// table interns (tag, string) keys and numbers them 0, 1, 2, ... in
// insertion order. It is the resolver's index: a few million keys must fit
// in little memory and cost the garbage collector nothing, so keys live in
// pointer-free byte chunks and the hash slots are plain integers (a Go
// map[string]uint32 needs about twice the memory and holds a pointer per key
// for the collector to scan).
//
// Layout: key i is stored at offs[i] in the chunk arena as its number i
// (4 bytes), tag byte, uvarint length, bytes. slots is an open-addressing
// (linear probing) table of uint64: high 32 bits a hash fragment to skip
// most wrong candidates, low 32 bits the key's arena offset + 1 (0 is
// empty). A look-up touches one slot and one arena entry: two cache misses
// on a big index, which is what resolution time is made of.
type table struct {
	seed   maphash.Seed
	chunks [][]byte
	offs   []uint32 // chunk<<chunkBits | position
	slots  []uint64
	mask   uint64
}

const (
	chunkBits = 20 // 1 MiB chunks: growth never copies the whole arena
	chunkSize = 1 << chunkBits
	maxKeyLen = chunkSize - 16
)

func newTable() *table {
	t := &table{seed: maphash.MakeSeed()}
	t.rehash(1 << 10)
	return t
}

// Len returns the number of keys.
func (t *table) Len() int { return len(t.offs) }

func (t *table) hash(tag byte, s string) uint64 {
	return maphash.String(t.seed, s) ^ (uint64(tag) * 0x9e3779b97f4a7c15)
}

func (t *table) hashBytes(tag byte, b []byte) uint64 {
	return maphash.Bytes(t.seed, b) ^ (uint64(tag) * 0x9e3779b97f4a7c15)
}

// Find returns the number of the key, or -1.
func (t *table) Find(tag byte, s string) int {
	h := t.hash(tag, s)
	frag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		sl := t.slots[i]
		if sl == 0 {
			return -1
		}
		if sl>>32 == frag {
			n, kt, ks := t.entry(uint32(sl) - 1)
			if kt == tag && string(ks) == s {
				return n
			}
		}
	}
}

// entry decodes the arena entry at offset o.
func (t *table) entry(o uint32) (n int, tag byte, key []byte) {
	b := t.chunks[o>>chunkBits][o&(chunkSize-1):]
	n = int(binary.LittleEndian.Uint32(b))
	tag = b[4]
	if l := b[5]; l < 0x80 { // the usual one-byte length
		return n, tag, b[6 : 6+int(l)]
	}
	l, w := binary.Uvarint(b[5:])
	return n, tag, b[5+w : 5+w+int(l)]
}

// Add inserts a key known to be absent and returns its number.
func (t *table) Add(tag byte, s string) int {
	if len(s) > maxKeyLen {
		panic("identity: key too long") // callers bound values to maxValueLen
	}
	// Keep the load under 13/16: the hash fragments make probing past a
	// wrong slot cheap, and 3M keys then fit 4M slots rather than 8M.
	if uint64(len(t.offs)+1)*16 > uint64(len(t.slots))*13 {
		t.rehash(2 * len(t.slots))
	}
	n := len(t.offs)
	if n >= 1<<32-2 {
		panic("identity: more than 4 billion keys")
	}
	need := 5 + binary.MaxVarintLen32 + len(s)
	if len(t.chunks) == 0 || len(t.chunks[len(t.chunks)-1])+need > cap(t.chunks[len(t.chunks)-1]) {
		if len(t.chunks) >= 1<<(32-chunkBits)-1 {
			panic("identity: key arena over 4 GiB")
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
	t.offs = append(t.offs, o)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	t.chunks[c] = append(b, s...)
	t.place(t.hash(tag, s), o)
	return n
}

func (t *table) place(h uint64, o uint32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = h&^0xffffffff | uint64(o+1)
			return
		}
	}
}

// key returns key n's tag and bytes (aliasing the arena: do not keep or modify).
func (t *table) key(n int) (byte, []byte) {
	_, tag, b := t.entry(t.offs[n])
	return tag, b
}

// Key returns key n's tag and string.
func (t *table) Key(n int) (byte, string) {
	tag, b := t.key(n)
	return tag, string(b)
}

func (t *table) rehash(size int) {
	t.slots = make([]uint64, size)
	t.mask = uint64(size - 1)
	for _, o := range t.offs {
		_, tag, b := t.entry(o)
		t.place(t.hashBytes(tag, b), o)
	}
}

// Truncate forgets keys n and above (the resolver's rollback). It rebuilds
// the slots, which is linear in the table size: rollback is the rare path.
func (t *table) Truncate(n int) {
	if n >= len(t.offs) {
		return
	}
	o := t.offs[n]
	c := int(o >> chunkBits)
	t.chunks[c] = t.chunks[c][:o&(chunkSize-1)]
	clear(t.chunks[c+1:])
	t.chunks = t.chunks[:c+1]
	t.offs = t.offs[:n]
	size := len(t.slots)
	for size > 1<<10 && uint64(n)*8 < uint64(size) { // shrink while under 3/8 full
		size /= 2
	}
	t.rehash(size)
}

// Bytes returns the memory the table holds (arena chunks, offsets, slots).
func (t *table) Bytes() int {
	n := cap(t.offs)*4 + len(t.slots)*8
	for _, c := range t.chunks {
		n += cap(c)
	}
	return n
}
