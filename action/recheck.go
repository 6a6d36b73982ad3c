package action

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// A recheck is either a segment name (the profile must still be in it at
// send time) or a condition over the profile's traits, computed and
// identified: terms "name OP value" joined by "and", with OP one of
// >=, <=, >, <, =, != and value a number, a "quoted string", true or
// false. For example: cart_value >= 50 and plan = "pro". A trait the
// profile lacks makes its term false.
type condition []term

type term struct {
	name, op string
	val      any // float64, string or bool
	// Computed numbers arrive as eval.Number (exact decimal text): both
	// sides are read from decimal text, so comparing them as float64 is
	// exact in order for up to 15 significant digits.
}

var (
	termRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|!=|=|>|<)\s*(.+?)\s*$`)
	andRE  = regexp.MustCompile(`(?i)\s+and\s+`)
)

// isCondition tells a condition from a segment name.
func isCondition(s string) bool { return strings.ContainsAny(s, "<>=") }

func parseCondition(s string) (condition, error) {
	var c condition
	for _, part := range andRE.Split(strings.TrimSpace(s), -1) {
		m := termRE.FindStringSubmatch(part)
		if m == nil {
			return nil, kiln.Errorf(kiln.EInvalid, "recheck %q: %q is not name OP value (OP one of >= <= > < = !=)", s, part)
		}
		t := term{name: m[1], op: m[2]}
		lit := m[3]
		switch {
		case lit == "true" || lit == "false":
			t.val = lit == "true"
		case strings.HasPrefix(lit, `"`):
			v, err := strconv.Unquote(lit)
			if err != nil {
				return nil, kiln.Errorf(kiln.EInvalid, "recheck %q: %s is not a quoted string", s, lit)
			}
			t.val = v
		default:
			f, err := strconv.ParseFloat(lit, 64)
			if err != nil {
				return nil, kiln.Errorf(kiln.EInvalid, "recheck %q: %s is not a number, a \"quoted string\", true or false", s, lit)
			}
			t.val = f
		}
		if _, ok := t.val.(bool); ok && t.op != "=" && t.op != "!=" {
			return nil, kiln.Errorf(kiln.EInvalid, "recheck %q: true and false compare only with = or !=", s)
		}
		c = append(c, t)
	}
	return c, nil
}

// holds reports whether every term holds for vals.
func (c condition) holds(vals map[string]any) bool {
	for _, t := range c {
		if !t.holds(vals[t.name]) {
			return false
		}
	}
	return true
}

func (t term) holds(v any) bool {
	var cmp int
	switch want := t.val.(type) {
	case float64:
		got, ok := number(v)
		if !ok {
			return false
		}
		cmp = compare(got, want)
	case string:
		got, ok := v.(string)
		if !ok {
			return false
		}
		cmp = strings.Compare(got, want)
	case bool:
		got, ok := v.(bool)
		if !ok {
			return false
		}
		cmp = 1
		if got == want {
			cmp = 0
		}
	}
	switch t.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	case "<":
		return cmp < 0
	default:
		return cmp <= 0
	}
}

func compare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case interface{ Float64() (float64, error) }: // json.Number, eval.Number (computed traits)
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func (c condition) String() string {
	parts := make([]string, len(c))
	for i, t := range c {
		parts[i] = fmt.Sprintf("%s %s %v", t.name, t.op, t.val)
	}
	return strings.Join(parts, " and ")
}
