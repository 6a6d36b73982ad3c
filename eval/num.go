package eval

import (
	"math"
	"math/big"
	"math/bits"
	"strconv"
)

// num is an exact number: c / (10^s · d). Decimals (everything read from
// events, traits and definitions, and every sum, min and max) have
// d = 1; a quotient that does not end (an average of three amounts, a
// division) keeps its divisor, so comparing it with a threshold is exact
// (sum >= threshold × count, in integers).
//
// Canonical form, which boxing, hashing and display rely on: d >= 1 has
// no factor 2 or 5 and no factor in common with c; c has no trailing
// zero while s > 0; zero is {0, 1, 0}. Arithmetic may return
// non-canonical decimals (a running sum keeps the finest scale it saw);
// norm makes them canonical, and comparisons work on either.
//
// The range: |c| < 2^63 and s <= maxScale (18 decimal places). A result
// outside it is an overflow: it is detected (the operation reports
// !ok) and shown as "overflow", never wrapped. Money and quantities are
// far inside: 2^63 hundredths are 92 quadrillion.
type num struct {
	c int64
	d int64
	s uint8
}

const maxScale = 18

var pow10 = [maxScale + 1]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

var pow10f = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

func intNum(n int64) num { return num{c: n, d: 1} }

// numFromFloat converts a float64 read from JSON to the decimal a user
// wrote: the shortest decimal that reads back as the same float64
// (strconv.FormatFloat(f, 'f', -1, 64)): 386.93 is 38693e-2, not the
// binary fraction nearest to it. ok is false for NaN, infinities and
// numbers outside the range (beyond ±9.2e18, or more than 18 decimals).
func numFromFloat(f float64) (num, bool) {
	if f == math.Trunc(f) && f > -(1<<53) && f < 1<<53 {
		return num{c: int64(f), d: 1}, true // integers: the common case
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return num{}, false
	}
	// Amounts with a few decimals: the smallest k for which some c/10^k
	// reads back as f is the shortest representation. While |c| < 2^50
	// the decimals 10^-k apart are far wider than f's rounding interval,
	// so math.Round(f·10^k) is that c, and one division checks it
	// (float64(c) and 10^k are exact, and division rounds correctly).
	for k := 1; k < len(pow10f); k++ {
		c := math.Round(f * pow10f[k])
		if c >= 1<<50 || c <= -(1<<50) {
			break
		}
		if c/pow10f[k] == f {
			return num{c: int64(c), d: 1, s: uint8(k)}, true
		}
	}
	var buf [32]byte
	return parseNum(strconv.AppendFloat(buf[:0], f, 'e', -1, 64))
}

// parseNum reads decimal text: [-+]digits[.digits][e[-+]digits]. It is
// exact; ok is false for anything else or out of range.
func parseNum(b []byte) (num, bool) {
	i, neg := 0, false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var c uint64
	scale, exp := 0, 0
	seenDot, any := false, false
	for ; i < len(b); i++ {
		ch := b[i]
		switch {
		case ch >= '0' && ch <= '9':
			any = true
			if c == 0 && ch == '0' {
				if seenDot {
					scale++ // 0.05: the zeros after the point count
				}
				continue
			}
			hi, lo := bits.Mul64(c, 10)
			next := lo + uint64(ch-'0')
			if hi != 0 || next < lo || next > math.MaxInt64 {
				// More digits than int64 holds: only zeros can follow,
				// at the end of an integer (kept as an exponent) or of
				// the fraction (they change nothing).
				if ch != '0' {
					return num{}, false
				}
				if !seenDot {
					exp++
				}
				continue
			}
			c = next
			if seenDot {
				scale++
			}
		case ch == '.' && !seenDot:
			seenDot = true
		case (ch == 'e' || ch == 'E') && any:
			e, err := strconv.Atoi(string(b[i+1:]))
			if err != nil || e > 400 || e < -400 {
				return num{}, false
			}
			exp += e
			i = len(b)
		default:
			return num{}, false
		}
	}
	if !any {
		return num{}, false
	}
	n := num{c: int64(c), d: 1}
	if neg {
		n.c = -n.c
	}
	s := scale - exp // value = c · 10^-s
	if c == 0 {
		return num{d: 1}, true
	}
	for s > 0 && n.c%10 == 0 {
		n.c /= 10
		s--
	}
	if s < 0 {
		if -s > maxScale {
			return num{}, false
		}
		var ok bool
		if n.c, ok = mul64(n.c, pow10[-s]); !ok {
			return num{}, false
		}
		s = 0
	}
	if s > maxScale {
		return num{}, false
	}
	n.s = uint8(s)
	return n, true
}

// norm strips trailing zeros: the canonical form of a decimal, and of
// a quotient once quo has reduced its divisor.
func (n num) norm() num {
	if n.c == 0 {
		return num{d: 1}
	}
	for n.s > 0 && n.c%10 == 0 {
		n.c /= 10
		n.s--
	}
	return n
}

func mul64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	neg := (a < 0) != (b < 0)
	hi, lo := bits.Mul64(uabs(a), uabs(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(lo), true
	}
	return int64(lo), true
}

func add64(a, b int64) (int64, bool) {
	s := a + b
	if (s > a) != (b > 0) {
		return 0, false
	}
	return s, true
}

func uabs(a int64) uint64 {
	if a < 0 {
		return uint64(-a) // MinInt64 gives 1<<63, its magnitude
	}
	return uint64(a)
}

// rescale returns c·10^k.
func rescale(c int64, k uint8) (int64, bool) {
	if c > rescaleMax[k] || c < -rescaleMax[k] {
		return 0, false
	}
	return c * pow10[k], true
}

// rescaleMax[k] is the largest c with c·10^k in range.
var rescaleMax = func() (m [maxScale + 1]int64) {
	for k := range m {
		m[k] = math.MaxInt64 / pow10[k]
	}
	return m
}()

// add returns a+b. Two decimals give a decimal at the finer scale (not
// normalised: a running sum keeps its scale).
func add(a, b num) (num, bool) {
	if a.d == 1 && b.d == 1 {
		if a.s == b.s {
			c, ok := add64(a.c, b.c)
			return num{c: c, d: 1, s: a.s}, ok
		}
		var ok bool
		if a.s < b.s {
			if a.c, ok = rescale(a.c, b.s-a.s); !ok {
				return num{}, false
			}
			a.s = b.s
		} else if b.c, ok = rescale(b.c, a.s-b.s); !ok {
			return num{}, false
		}
		c, ok := add64(a.c, b.c)
		return num{c: c, d: 1, s: a.s}, ok
	}
	// a.c/(10^a.s·a.d) + b.c/(10^b.s·b.d) over 10^S·a.d·b.d.
	s := max(a.s, b.s)
	ac, ok1 := rescale(a.c, s-a.s)
	bc, ok2 := rescale(b.c, s-b.s)
	x, ok3 := mul64(ac, b.d)
	y, ok4 := mul64(bc, a.d)
	c, ok5 := add64(x, y)
	d, ok6 := mul64(a.d, b.d)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return num{}, false
	}
	return quo(c, s, d)
}

func neg(a num) (num, bool) {
	if a.c == math.MinInt64 {
		return num{}, false
	}
	a.c = -a.c
	return a, true
}

func sub(a, b num) (num, bool) {
	nb, ok := neg(b)
	if !ok {
		return num{}, false
	}
	return add(a, nb)
}

func mul(a, b num) (num, bool) {
	c, ok := mul64(a.c, b.c)
	if !ok {
		return num{}, false
	}
	s := int(a.s) + int(b.s)
	for s > maxScale && c%10 == 0 && c != 0 {
		c /= 10
		s--
	}
	if c == 0 {
		return num{d: 1}, true
	}
	if s > maxScale {
		return num{}, false
	}
	d, ok := mul64(a.d, b.d)
	if !ok {
		return num{}, false
	}
	return quo(c, uint8(s), d)
}

// div returns a/b; b must not be zero.
func div(a, b num) (num, bool) {
	// a.c/(10^a.s·a.d) · (10^b.s·b.d)/b.c
	c, ok1 := mul64(a.c, b.d)
	d, ok2 := mul64(b.c, a.d)
	if !ok1 || !ok2 {
		return num{}, false
	}
	var s uint8
	if b.s >= a.s {
		var ok bool
		if c, ok = rescale(c, b.s-a.s); !ok {
			return num{}, false
		}
	} else {
		s = a.s - b.s
	}
	if d < 0 {
		if c == math.MinInt64 || d == math.MinInt64 {
			return num{}, false
		}
		c, d = -c, -d
	}
	return quo(c, s, d)
}

// quo returns c / (10^s · d) in canonical form; d > 0. The factors 2 and
// 5 of the divisor move into the scale, so a quotient that ends is a
// decimal.
func quo(c int64, s uint8, d int64) (num, bool) {
	if c == 0 {
		return num{d: 1}, true
	}
	if d != 1 {
		g := int64(gcd(uabs(c), uint64(d)))
		c /= g
		d /= g
		twos, fives := 0, 0
		for d%2 == 0 {
			d /= 2
			twos++
		}
		for d%5 == 0 {
			d /= 5
			fives++
		}
		k := max(twos, fives)
		if k > 0 {
			m := int64(1)
			for i := twos; i < k; i++ {
				m *= 2
			}
			for i := fives; i < k; i++ {
				m *= 5
			}
			var ok bool
			if c, ok = mul64(c, m); !ok {
				return num{}, false
			}
			ns := int(s) + k
			for ns > maxScale && c%10 == 0 {
				c /= 10
				ns--
			}
			if ns > maxScale {
				return num{}, false
			}
			s = uint8(ns)
		}
	}
	return num{c: c, d: d, s: s}.norm(), true
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// cmpNum compares exactly: -1, 0 or +1.
func cmpNum(a, b num) int {
	if a.d == 1 && b.d == 1 && a.s == b.s {
		switch {
		case a.c < b.c:
			return -1
		case a.c > b.c:
			return 1
		}
		return 0
	}
	sa, sb := sgn(a.c), sgn(b.c)
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	if sa == 0 {
		return 0
	}
	// |a.c|·10^(S-a.s)·b.d against |b.c|·10^(S-b.s)·a.d, in 128 bits.
	s := max(a.s, b.s)
	ma, ok1 := umul(uint64(pow10[s-a.s]), uint64(b.d))
	mb, ok2 := umul(uint64(pow10[s-b.s]), uint64(a.d))
	if !ok1 || !ok2 {
		return cmpBig(a, b)
	}
	ah, al := bits.Mul64(uabs(a.c), ma)
	bh, bl := bits.Mul64(uabs(b.c), mb)
	c := 0
	switch {
	case ah < bh || ah == bh && al < bl:
		c = -1
	case ah > bh || ah == bh && al > bl:
		c = 1
	}
	return c * sa
}

func umul(a, b uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	return lo, hi == 0
}

func sgn(c int64) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func (n num) rat() *big.Rat {
	den := new(big.Int).Mul(big.NewInt(n.d), big.NewInt(pow10[n.s]))
	return new(big.Rat).SetFrac(big.NewInt(n.c), den)
}

func cmpBig(a, b num) int { return a.rat().Cmp(b.rat()) }

// float returns the nearest float64 (for code that wants one).
func (n num) float() float64 {
	if n.d == 1 {
		if n.s == 0 {
			return float64(n.c)
		}
		if n.c > -(1<<53) && n.c < 1<<53 {
			return float64(n.c) / float64(pow10[n.s]) // both exact: correctly rounded
		}
	}
	f, _ := n.rat().Float64()
	return f
}

// appendText writes the number as users write it. A decimal is written
// exactly, with at least places decimals (money: "500.00"); a quotient
// that does not end, or a decimal with more than places decimals when
// round is set (money), is rounded half-even: to places decimals, or,
// with places 0, to s+2 decimals (an average of 10, 20 and 20 is shown
// as 16.67).
func (n num) appendText(b []byte, places int, round bool) []byte {
	c, s := n.c, int(n.s)
	if n.d != 1 || (round && s > places) {
		p := places
		if !round {
			p = s + 2
		}
		var ok bool
		c, ok = n.roundTo(p)
		if !ok {
			return n.appendBig(b, p)
		}
		s = p
		if !round {
			for s > 0 && c%10 == 0 {
				c /= 10
				s--
			}
		}
	}
	u := uabs(c)
	if c < 0 {
		b = append(b, '-')
	}
	var digits [24]byte
	ds := strconv.AppendUint(digits[:0], u, 10)
	if s == 0 {
		b = append(b, ds...)
	} else {
		if len(ds) <= s {
			b = append(b, '0')
		} else {
			b = append(b, ds[:len(ds)-s]...)
		}
		b = append(b, '.')
		for i := len(ds); i < s; i++ {
			b = append(b, '0')
		}
		if len(ds) > s {
			b = append(b, ds[len(ds)-s:]...)
		} else {
			b = append(b, ds...)
		}
	}
	if s < places {
		if s == 0 {
			b = append(b, '.')
		}
		for i := s; i < places; i++ {
			b = append(b, '0')
		}
	}
	return b
}

// roundTo returns the number rounded half-even to p decimals, as a
// coefficient at scale p.
func (n num) roundTo(p int) (int64, bool) {
	// value·10^p = c·10^(p-s) / d
	var num1 uint64 = uabs(n.c)
	d := uint64(n.d)
	var hi, lo uint64
	if p >= int(n.s) {
		if p-int(n.s) > maxScale {
			return 0, false
		}
		hi, lo = bits.Mul64(num1, uint64(pow10[p-int(n.s)]))
	} else {
		// Fewer places than the number has: divide by 10^(s-p) too.
		m, ok := umul(d, uint64(pow10[int(n.s)-p]))
		if !ok {
			return 0, false
		}
		d = m
		lo = num1
	}
	if hi >= d {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, d)
	// half-even
	if r2h, r2l := bits.Mul64(r, 2); r2h != 0 || r2l > d || (r2l == d && q%2 == 1) {
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	if n.c < 0 {
		return -int64(q), true
	}
	return int64(q), true
}

func (n num) appendBig(b []byte, p int) []byte {
	return append(b, n.rat().FloatString(p)...)
}
