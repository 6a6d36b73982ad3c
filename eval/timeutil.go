package eval

import (
	"time"

	"github.com/kiln-cdp/kiln/rule"
)

// period returns the calendar period containing now (ms) in the
// program's time zone: [start, next).
func (p *Program) period(wk uint8, now int64) (int64, int64) {
	t := time.UnixMilli(now).In(p.loc)
	y, m, d := t.Date()
	var start, next time.Time
	switch wk {
	case wToday:
		start = time.Date(y, m, d, 0, 0, 0, 0, p.loc)
		next = time.Date(y, m, d+1, 0, 0, 0, 0, p.loc)
	case wWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, d-back, 0, 0, 0, 0, p.loc)
		next = time.Date(y, m, d-back+7, 0, 0, 0, 0, p.loc)
	case wMonth:
		start = time.Date(y, m, 1, 0, 0, 0, 0, p.loc)
		next = time.Date(y, m+1, 1, 0, 0, 0, 0, p.loc)
	default: // wYear
		start = time.Date(y, 1, 1, 0, 0, 0, 0, p.loc)
		next = time.Date(y+1, 1, 1, 0, 0, 0, 0, p.loc)
	}
	return start.UnixMilli(), next.UnixMilli()
}

// dateValue reads a profile trait as an instant.
// timeV is an event's instant as a value: RFC 3339 in UTC to the
// millisecond ("2026-03-10T09:00:00.000Z"), which dateValue reads back
// exactly.
func timeV(ms int64) value {
	return value{kind: kStr, str: time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")}
}

func (p *Program) dateValue(x any) (int64, bool) {
	switch v := x.(type) {
	case string:
		t, ok := rule.ParseDate(v, p.loc)
		if !ok {
			return 0, false
		}
		return t.UnixMilli(), true
	case time.Time:
		return v.UnixMilli(), true
	}
	return 0, false
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// anniversaryOn is the date of the anniversary of (m, d) in year y:
// Feb 29 falls on Feb 28 in common years.
func anniversaryOn(y int, m time.Month, d int) (int, time.Month, int) {
	if m == time.February && d == 29 && !isLeap(y) {
		return y, m, 28
	}
	return y, m, d
}

// nextAnniversary finds the next anniversary (today included) of a date
// value, in the program's zone: its date and how many days away it is.
func (p *Program) nextAnniversary(x any, now int64) (y int, m time.Month, d, days int, ok bool) {
	var dm time.Month
	var dd int
	switch v := x.(type) {
	case string:
		if _, m, d, ok := dateOnly(v); ok {
			dm, dd = m, d
			break
		}
		t, ok := rule.ParseDate(v, p.loc)
		if !ok {
			return 0, 0, 0, 0, false
		}
		_, dm, dd = t.In(p.loc).Date()
	case time.Time:
		_, dm, dd = v.In(p.loc).Date()
	default:
		return 0, 0, 0, 0, false
	}
	ty, tm, td := time.UnixMilli(now).In(p.loc).Date()
	todayUTC := time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC)
	y, m, d = anniversaryOn(ty, dm, dd)
	ann := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if ann.Before(todayUTC) {
		y, m, d = anniversaryOn(ty+1, dm, dd)
		ann = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	return y, m, d, int(ann.Sub(todayUTC).Hours()/24 + 0.5), true
}

// anniversary evaluates "anniversary of X within next N days" at now:
// true when the next anniversary (today counts) is fewer than N calendar
// days away, i.e. it falls on one of the N days starting today. It also
// returns the next midnight (in the program's zone) at which the answer
// can change.
func (p *Program) anniversary(x any, n int, now int64) (bool, int64) {
	y, m, d, days, ok := p.nextAnniversary(x, now)
	if !ok {
		return false, 0
	}
	if days < n {
		// Stays true through the anniversary day.
		return true, time.Date(y, m, d+1, 0, 0, 0, 0, p.loc).UnixMilli()
	}
	return false, time.Date(y, m, d-(n-1), 0, 0, 0, 0, p.loc).UnixMilli()
}

// dateOnly reads "YYYY-MM-DD" without time.Parse (birthdays are read on
// every evaluation of an anniversary condition), with the same validity
// rules.
func dateOnly(s string) (int, time.Month, int, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	num := func(a string) (int, bool) {
		n := 0
		for i := 0; i < len(a); i++ {
			c := a[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(s[:4])
	m, ok2 := num(s[5:7])
	d, ok3 := num(s[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 {
		return 0, 0, 0, false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
	if m == 2 && isLeap(y) {
		days = 29
	}
	if d > days {
		return 0, 0, 0, false
	}
	return y, time.Month(m), d, true
}
