package eval

import (
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

func numText(n num) string { return string(n.appendText(nil, 0, false)) }

// A float64 read from JSON converts to the decimal strconv's shortest
// round trip writes: what the user wrote.
func TestNumFromFloatIsShortestDecimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(f float64) {
		t.Helper()
		n, ok := numFromFloat(f)
		want := strconv.FormatFloat(f, 'f', -1, 64)
		// In range: at most 18 decimals and a coefficient below 2^63.
		whole, frac, _ := strings.Cut(strings.TrimPrefix(want, "-"), ".")
		coef, _ := new(big.Int).SetString(strings.TrimLeft(whole+frac, "0")+"0", 10)
		inRange := len(frac) <= maxScale && coef.Div(coef, big.NewInt(10)).IsInt64()
		if ok != inRange {
			t.Fatalf("%s: converted %v, in range %v", want, ok, inRange)
		}
		if !ok {
			return
		}
		if got := numText(n); got != want {
			t.Fatalf("%v: got %s, want %s", f, got, want)
		}
		if n.norm() != n {
			t.Fatalf("%s: not canonical: %+v", want, n)
		}
	}
	for _, f := range []float64{0, -0.0, 1, -1, 0.1, 0.2, 0.3, 386.93, 1e-18, 123456789.123, 0.000001, 9007199254740991, 9007199254740993, 1e17, 5e-324, 1.7976931348623157e308} {
		check(f)
	}
	for i := 0; i < 200000; i++ {
		switch i % 3 {
		case 0: // amounts with up to 6 decimals
			k := r.IntN(7)
			c := r.Int64N(1e12) - 5e11
			f, _ := strconv.ParseFloat(strconv.FormatInt(c, 10)+"e-"+strconv.Itoa(k), 64)
			check(f)
		case 1: // any float in a wide range
			check((r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(30)-12)))
		default: // any bits
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) {
				check(f)
			}
		}
	}
	if v := toValue(math.NaN()); v.kind != kNull {
		t.Errorf("NaN reads as %v, want null", v)
	}
	if v := toValue(1e300); v.kind != kOver {
		t.Errorf("1e300 reads as %v, want overflow", v)
	}
	if v := toValue(json.Number("386.930")); v.kind != kNum || numText(v.dec()) != "386.93" {
		t.Errorf("json.Number reads as %v", v)
	}
}

func TestParseNum(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "0.00": "0", "000.050": "0.05", "1e3": "1000", "1.5e-3": "0.0015",
		"-12.340": "-12.34", "9223372036854775807": "9223372036854775807", "100000000000000000000e-3": "100000000000000000",
		"0.000000000000000001": "0.000000000000000001", "1.0000000000000000000000": "1",
	} {
		n, ok := parseNum([]byte(in))
		if !ok || numText(n) != want {
			t.Errorf("parseNum(%q) = %s %v, want %s", in, numText(n), ok, want)
		}
	}
	for _, in := range []string{"", "-", "1.2.3", "abc", "9223372036854775808", "1e19", "0.0000000000000000001", "1e", "e5"} {
		if n, ok := parseNum([]byte(in)); ok {
			t.Errorf("parseNum(%q) = %s, want an error", in, numText(n))
		}
	}
}

// Arithmetic agrees with math/big and reports every overflow.
func TestNumArithmeticIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gen := func() num {
		var n num
		switch r.IntN(4) {
		case 0:
			n, _ = quo(r.Int64N(2000)-1000, uint8(r.IntN(3)), 1+r.Int64N(12))
		case 1: // large
			n = num{c: r.Int64() >> r.IntN(64), d: 1, s: uint8(r.IntN(19))}.norm()
		default:
			n = num{c: r.Int64N(1e6) - 5e5, d: 1, s: uint8(r.IntN(4))}.norm()
		}
		return n
	}
	ops := []struct {
		name string
		f    func(a, b num) (num, bool)
		g    func(z, a, b *big.Rat) *big.Rat
	}{
		{"+", add, (*big.Rat).Add}, {"-", sub, (*big.Rat).Sub}, {"*", mul, (*big.Rat).Mul},
		{"/", div, func(z, a, b *big.Rat) *big.Rat { return z.Quo(a, b) }},
	}
	for i := 0; i < 100000; i++ {
		a, b := gen(), gen()
		if c := cmpNum(a, b); c != a.rat().Cmp(b.rat()) {
			t.Fatalf("cmp(%+v, %+v) = %d", a, b, c)
		}
		for _, op := range ops {
			if op.name == "/" && b.c == 0 {
				continue
			}
			got, ok := op.f(a, b)
			want := op.g(new(big.Rat), a.rat(), b.rat())
			if !ok {
				// Overflow (also of an intermediate product); what is
				// returned as ok must be exact, never wrapped.
				continue
			}
			if got.rat().Cmp(want) != 0 {
				t.Fatalf("%+v %s %+v = %+v (%s), want %s", a, op.name, b, got, got.rat().RatString(), want.RatString())
			}
			if got.d != 1 || op.name != "+" && op.name != "-" {
				if got.norm() != got {
					t.Fatalf("%+v %s %+v = %+v: not canonical", a, op.name, b, got)
				}
			}
		}
	}
	// Overflow is reported, not wrapped.
	if _, ok := add(num{c: math.MaxInt64, d: 1}, intNum(1)); ok {
		t.Error("MaxInt64 + 1 did not overflow")
	}
	if _, ok := add(num{c: 1e17, d: 1}, num{c: 1, d: 1, s: 2}); ok {
		t.Error("1e17 + 0.01 did not overflow")
	}
	if _, ok := mul(num{c: 1, d: 1, s: 10}, num{c: 3, d: 1, s: 10}); ok {
		t.Error("20 decimal places did not overflow")
	}
}

func TestNumText(t *testing.T) {
	third, _ := quo(100, 0, 3)
	for _, c := range []struct {
		n     num
		money string
		plain string
	}{
		{num{c: 38693, d: 1, s: 2}, "386.93", "386.93"},
		{intNum(500), "500.00", "500"},
		{num{c: 5, d: 1, s: 1}, "0.50", "0.5"},
		{num{c: -5, d: 1, s: 3}, "0.00", "-0.005"},
		{num{c: 125, d: 1, s: 3}, "0.12", "0.125"}, // half-even
		{num{c: 135, d: 1, s: 3}, "0.14", "0.135"},
		{num{c: -125, d: 1, s: 3}, "-0.12", "-0.125"},
		{third, "33.33", "33.33"},
		{num{c: 2, d: 3, s: 0}, "0.67", "0.67"},
		{num{c: 1, d: 3, s: 3}, "0.00", "0.00033"},
	} {
		if got := string(c.n.appendText(nil, 2, true)); got != c.money {
			t.Errorf("%+v as money: %s, want %s", c.n, got, c.money)
		}
		if got := numText(c.n); got != c.plain {
			t.Errorf("%+v: %s, want %s", c.n, got, c.plain)
		}
	}
	if got := string(intNum(1234).appendText(nil, minorUnits("JPY"), true)); got != "1234" {
		t.Errorf("JPY: %s", got)
	}
	if got := string(num{c: 1234, d: 1, s: 1}.appendText(nil, minorUnits("KWD"), true)); got != "123.400" {
		t.Errorf("KWD: %s", got)
	}
}

// Values show as users write them in results, evidence and explain.
func TestValuesShowAsWritten(t *testing.T) {
	p := mustCompile(t, `
trait spend = sum(properties.revenue) of "Order Completed" all time
segment big { spend >= 386.93 }
`, time.UTC)
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var res Result
	for _, r := range []float64{100.1, 200.2, 86.63} { // 386.93000000000006 in float64
		res = p.Apply(st, nil, track("Order Completed", now, map[string]any{"revenue": r}), now)
	}
	if changed(res, "big") != "entered" {
		t.Fatalf("not entered: %+v", res)
	}
	b, _ := json.Marshal(res.Changed[0].Evidence)
	if want := `[{"condition":"spend \u003e= 386.93","value":386.93,"holds":true}]`; string(b) != want {
		t.Errorf("evidence %s, want %s", b, want)
	}
	if v := p.TraitValues(st)["spend"]; v != (Number{Text: "386.93", Currency: "USD"}) || fmtAny(v) != "386.93" {
		t.Errorf("trait %v", v)
	}
	n, _ := p.Explain(st, nil, "big", now)
	if n.Why != "value 386.93 USD; needs >= 386.93 USD" || n.Value != (Number{Text: "386.93", Currency: "USD"}) || n.Currency != "USD" {
		t.Errorf("explain %+v", n)
	}
	if b, _ := json.Marshal(p.TraitValues(st)); string(b) != `{"spend":386.93}` {
		t.Errorf("JSON %s", b)
	}
}

func fmtAny(v any) string { b, _ := json.Marshal(v); return string(b) }

// A sum beyond the exact range is overflow: shown so, never wrapped,
// and both evaluators agree.
func TestSumOverflowIsReported(t *testing.T) {
	p := mustCompile(t, `
trait total = sum(properties.v) of "A" all time
trait recent = sum(properties.v) of "A" in last 1 days
segment big { total > 1 }
segment none { not total exists }
`, time.UTC)
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []*kiln.Event
	for _, v := range []float64{2e17, 0.01} {
		ev := track("A", now, map[string]any{"v": v})
		evs = append(evs, ev)
		p.Apply(st, nil, ev, now)
	}
	got := p.TraitValues(st)
	if got["total"] != nil || got["recent"] != nil {
		t.Fatalf("traits %v, want overflow (nil)", got)
	}
	if in, _ := p.Member(st, "big"); in {
		t.Error("an overflow compared > 1")
	}
	if in, _ := p.Member(st, "none"); in {
		t.Error("an overflow does not exist")
	}
	n, _ := p.Explain(st, nil, "big", now)
	if !strings.Contains(n.Why, "overflow") {
		t.Errorf("explain does not say overflow: %+v", n)
	}
	if want := p.Naive(evs, nil, now); want.Traits["total"] != nil || want.Segments["big"] {
		t.Errorf("naive %+v", want)
	}
}
