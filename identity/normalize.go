package identity

import (
	"strings"
)

// maxValueLen bounds an identifier value. Longer values are not customer
// identifiers (they are tokens or pasted text) and would bloat the index.
const maxValueLen = 512

// NormalizeEmail trims and lower-cases an email address and reports whether
// it is plausibly one: a single "@" with a non-empty local part (at most 64
// bytes) and a domain of dot-separated labels (letters, digits, "-") ending
// in a top-level domain of two or more letters. A "mailto:" prefix and
// surrounding angle brackets are dropped.
//
// Provider-specific rewrites (dots and "+tags" at Gmail) are deliberately not
// applied: guessing would merge different people elsewhere, and a missed
// link is cheaper than a wrong merge.
func NormalizeEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 254 {
		return "", false
	}
	if len(s) > 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	if len(s) > 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at > 64 || at == len(s)-1 || strings.IndexByte(s[at+1:], '@') >= 0 {
		return "", false
	}
	for i := 0; i < at; i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c == '"' || c == ',' || c == ';' || c == '<' || c == '>' || c == '(' || c == ')' || c == '[' || c == ']' || c == '\\' {
			return "", false
		}
	}
	if s[0] == '.' || s[at-1] == '.' || strings.Contains(s[:at], "..") {
		return "", false
	}
	domain := s[at+1:]
	labels := 0
	last := ""
	for domain != "" {
		label, rest, _ := strings.Cut(domain, ".")
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c >= 0x80) {
				return "", false
			}
		}
		labels++
		last = label
		if rest == "" && strings.HasSuffix(domain, ".") {
			return "", false // trailing dot
		}
		domain = rest
	}
	if labels < 2 || len(last) < 2 {
		return "", false
	}
	for i := 0; i < len(last); i++ {
		if c := last[i]; c >= '0' && c <= '9' {
			return "", false // "a@1.2.3.4": an IP literal, not a mailbox people use
		}
	}
	return strings.ToLower(s), true
}

// NormalizePhone puts a phone number into E.164 form ("+" and 8 to 15
// digits) and reports whether it is plausibly a real number.
//
// Separators (spaces, "-", ".", "/", parentheses) are dropped and an
// extension ("x12", "ext. 12", "#12") is cut off; any other letter rejects
// the value. "+", "00" (and "011" with country code "+1") introduce the
// international form. A number without one is national: countryCode (e.g.
// "+44", "+1") is put in front after dropping the trunk prefix (a leading
// "0", or "1" in North America; Italy keeps its "0"). With countryCode ""
// national numbers are rejected, since they cannot be placed.
//
// Junk is rejected: too few or too many digits, a country code starting
// with 0, North American numbers with an impossible area code or exchange,
// and national numbers made of one repeated digit or a run like 123456789.
func NormalizePhone(s, countryCode string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	if i := strings.Index(strings.ToLower(s), "ext"); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexAny(s, "xX#"); i >= 0 {
		s = s[:i]
	}
	var buf [24]byte
	digits := buf[:0]
	plus := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(digits) == cap(digits) {
				return "", false
			}
			digits = append(digits, c)
		case c == '+' && len(digits) == 0 && !plus:
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')' || c == '\t':
		default:
			return "", false
		}
	}
	cc := strings.TrimPrefix(countryCode, "+")
	var full []byte // E.164 digits without "+"
	switch {
	case plus:
		full = digits
	case len(digits) > 2 && digits[0] == '0' && digits[1] == '0':
		full = digits[2:]
	case cc == "1" && len(digits) > 3 && string(digits[:3]) == "011":
		full = digits[3:]
	case cc == "":
		return "", false
	default:
		national := digits
		switch {
		case cc == "1" && len(national) == 11 && national[0] == '1':
			national = national[1:]
		case cc != "39" && len(national) > 0 && national[0] == '0':
			national = national[1:]
		}
		full = append([]byte(cc), national...)
	}
	if len(full) < 8 || len(full) > 15 || full[0] == '0' {
		return "", false
	}
	if full[0] == '1' { // North American Numbering Plan: 1 NXX NXX XXXX
		if len(full) != 11 || full[1] < '2' || full[4] < '2' {
			return "", false
		}
	}
	if junkDigits(full[countryLen(full):]) {
		return "", false
	}
	return "+" + string(full), true
}

// countryLen guesses the length of the country code at the start of an
// E.164 number, only precisely enough to look at the national part for junk:
// 1 and 7 are one digit, the two-digit codes are listed, the rest are three.
func countryLen(full []byte) int {
	if full[0] == '1' || full[0] == '7' {
		return 1
	}
	switch string(full[:2]) {
	case "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
		"51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66",
		"81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98":
		return 2
	}
	return 3
}

// junkDigits reports national numbers people type to get past a form: one
// digit repeated, or an ascending or descending run.
func junkDigits(n []byte) bool {
	if len(n) < 4 {
		return true
	}
	same, up, down := true, true, true
	for i := 1; i < len(n); i++ {
		same = same && n[i] == n[0]
		up = up && n[i] == '0'+(n[i-1]-'0'+1)%10
		down = down && n[i]+1 == n[i-1]
	}
	return same || up || down
}

// normalizeID trims a user id, anonymous id or other free-form value.
func normalizeID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxValueLen {
		return "", false
	}
	return s, true
}

// normalizeLoyalty trims a loyalty number, drops spaces and dashes inside it
// and upper-cases it: cards are printed in capitals with groups and typed
// any way.
func normalizeLoyalty(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxValueLen {
		return "", false
	}
	if strings.ContainsAny(s, " -") {
		s = strings.NewReplacer(" ", "", "-", "").Replace(s)
	}
	s = strings.ToUpper(s)
	return s, s != ""
}
