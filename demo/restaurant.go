package demo

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/kiln-cdp/kiln"
)

const (
	restDomain = "https://lavashandvine.example"
	salesTax   = 0.095
)

// areaCodes are area codes around each location (by index). A guest's
// number is in the unassigned 555 exchange of a code near their home
// location; each code belongs to one location, so numbers are unique:
// guest n gets code n/10000 of their list and line n%10000.
var areaCodes = [][]string{{"818", "747", "661"}, {"626", "909", "562"}, {"213", "323", "310", "424"}}

// restEvent is a restaurant event guests can RSVP to.
type restEvent struct {
	id, name string
	location int   // index into locations; -1 for group-wide events (held in Glendale)
	at       int64 // start
	announce int64 // when invitations go out
}

// easter returns Western (Gregorian) Easter Sunday, which the Armenian
// Apostolic Church also follows; Vardavar is 98 days later.
func easter(y int) time.Time {
	a, b, c := y%19, y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(y, time.Month(month), day, 0, 0, 0, 0, restaurantZone)
}

// restaurantEvents schedules wine nights (monthly at every location),
// Trndez, Vardavar and New Year's Eve suppers over the window.
func restaurantEvents(start, end int64) []restEvent {
	var es []restEvent
	wine := []string{"Areni Wine Night", "Vayots Dzor Wine Night", "Armenian Brandy Tasting", "Orange Wines of Armenia"}
	add := func(name string, loc int, t time.Time) {
		at := t.UnixMilli()
		ann := at - 21*day
		if ann < start || ann >= end {
			return
		}
		es = append(es, restEvent{name: name, location: loc, at: at, announce: ann})
	}
	first, last := toTime(start).In(restaurantZone), toTime(end).In(restaurantZone)
	for y := first.Year(); y <= last.Year()+1; y++ {
		for m := time.January; m <= time.December; m++ {
			t := time.Date(y, m, 8, 19, 0, 0, 0, restaurantZone)
			for t.Weekday() != time.Thursday {
				t = t.AddDate(0, 0, 1)
			}
			for li := range locations {
				// Second, third and fourth Thursdays, one location each.
				add(wine[(int(m)+li)%len(wine)], li, t.AddDate(0, 0, li*7))
			}
		}
		add("Trndez Bonfire Night", -1, time.Date(y, time.February, 13, 18, 0, 0, 0, restaurantZone))
		add("Vardavar Water Festival", -1, easter(y).AddDate(0, 0, 98).Add(12*time.Hour))
		for li := range locations {
			add("New Year's Eve Supper", li, time.Date(y, time.December, 31, 20, 0, 0, 0, restaurantZone))
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].announce < es[j].announce })
	for i := range es {
		es[i].id = fmt.Sprintf("evt-%03d", i+1)
	}
	return es
}

// restaurantCampaigns schedules the group's newsletters: a seasonal menu
// launch at the start of each season and a monthly letter.
func restaurantCampaigns(start, end int64) []campaign {
	launches := map[time.Month][2]string{
		time.March:     {"Spring Menu: Jingalov Hats Are Back", "Wild herbs, sorrel and spring lamb"},
		time.June:      {"Summer Menu: Ishkhan Trout and Apricots", "Our summer menu starts today"},
		time.September: {"Autumn Menu: Ghapama Season", "The pumpkins are in: ghapama is back"},
		time.December:  {"Winter Menu: Harissa and Khash", "Warm up with our winter menu"},
	}
	var cs []campaign
	first, last := toTime(start).In(restaurantZone), toTime(end).In(restaurantZone)
	for t := time.Date(first.Year(), first.Month(), 1, 10, 0, 0, 0, restaurantZone); !t.After(last); t = t.AddDate(0, 1, 0) {
		if l, ok := launches[t.Month()]; ok {
			cs = append(cs, campaign{name: l[0], subject: l[1], path: "/menu/" + SeasonAt(t), at: t.UnixMilli(), appeal: 1.3})
		}
		mid := t.AddDate(0, 0, 14)
		cs = append(cs, campaign{name: RestaurantName + " News: " + mid.Format("January 2006"), subject: "What's cooking this month",
			path: "/news", at: mid.UnixMilli(), appeal: 1})
	}
	out := cs[:0]
	for _, c := range cs {
		if c.at >= start && c.at < end {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	for i := range out {
		out[i].id = fmt.Sprintf("lv-%03d", i+1)
	}
	return out
}

// newRestaurant makes the restaurant group's guests.
func newRestaurant(w *world, guests int) []actor {
	w.menu = newMenuIndex()
	w.events = restaurantEvents(w.start, w.end)
	w.rcampaigns = restaurantCampaigns(w.start, w.end)
	actors := make([]actor, guests)
	for n := 1; n <= guests; n++ {
		actors[n-1] = newGuest(w, n)
	}
	return actors
}

// Visit rhythms.
const (
	weekly     = "weekly"
	monthly    = "monthly"
	occasional = "occasional"
)

// guest is one restaurant guest.
type guest struct {
	tl timeline
	w  *world
	r  rng
	n  int

	first, last, email, phone, loyalty, birthday string
	bMonth, bDay                                 int
	home                                         int
	rhythm                                       string
	meanGap                                      float64 // days between visits, on average
	member                                       bool    // joins (or has joined) the loyalty programme
	joinVisit                                    int     // the visit at which they join
	joined                                       bool
	joinedAt                                     int64
	introduced                                   bool // an existing member's first in-window identify
	online, onlineKnown                          bool // orders online; has an online account
	takeRate                                     float64
	churnAt                                      int64
	sat, trend                                   float64 // rating level and drift per year
	feedbackP                                    float64
	favs                                         []int
	consent                                      bool
	openP                                        float64
	visits, memberVisits, takes                  int

	nextVisit, nextTake, nextBirthday, nextAttend int64
	attend                                        *restEvent
	ev, camp                                      int
}

func newGuest(w *world, n int) *guest {
	r := newRNG(w.seed, streamGuest, n)
	g := &guest{w: w, r: r, n: n}
	g.tl = timeline{end: w.end, kind: kindGuest}
	g.first, g.last = pick(r, laFirst), pick(r, laLast)
	lw := make([]float64, len(locations))
	for i, l := range locations {
		lw[i] = l.weight
	}
	g.home = r.weighted(lw)
	switch x := r.Float64(); {
	case x < 0.10:
		g.rhythm, g.meanGap = weekly, r.uniform(5, 10)
	case x < 0.40:
		g.rhythm, g.meanGap = monthly, r.uniform(20, 40)
	default:
		g.rhythm, g.meanGap = occasional, r.uniform(60, 180)
	}
	if codes := areaCodes[g.home]; n/10000 < len(codes) {
		g.phone = fmt.Sprintf("+1%s555%04d", codes[n/10000], n%10000)
	}
	if g.phone == "" || r.chance(0.75) {
		g.email = localPart(g.first, g.last, n, r.IntN(4)) + "@" + pick(r, []string{"example.net", "mail.example.net"})
	}
	joinP := map[string]float64{weekly: 0.85, monthly: 0.65, occasional: 0.4}[g.rhythm]
	g.member = r.chance(joinP)
	if g.member {
		g.loyalty = fmt.Sprintf("LV%07d", 1000000+n)
		g.joinVisit = r.between(1, 3)
		if r.chance(0.6) {
			g.bMonth, g.bDay = r.between(1, 12), r.between(1, 28)
			g.birthday = fmt.Sprintf("%d-%02d-%02d", r.between(1950, 2004), g.bMonth, g.bDay)
		}
	}
	g.online = g.email != "" && r.chance(0.4)
	g.takeRate = r.gamma(1.2, 1.0/55)
	g.feedbackP = r.beta(2, 8)
	g.consent = g.email != "" && r.chance(0.7)
	g.openP = r.beta(2, 4)
	g.sat = math.Max(1.5, math.Min(5, 4.1+0.5*r.NormFloat64()))
	g.trend = 0.3 * r.NormFloat64()
	mains := append(append([]int(nil), w.menu.course[CourseGrill]...), w.menu.course[CourseMains]...)
	for i := r.between(1, 3); i > 0; i-- {
		g.favs = append(g.favs, pick(r, mains))
	}

	span := w.end - w.start
	var first int64
	if r.chance(0.35) {
		// A guest from before the window; members among them joined earlier.
		first = w.start + days(r.uniform(0, g.meanGap))
		if g.member {
			g.joined = true
			g.joinedAt = w.start - days(r.uniform(30, 700))
			g.memberVisits = r.IntN(int(700/g.meanGap) + 1)
		}
	} else {
		first = w.start + int64(r.Float64()*float64(span-min(7*day, span/4)))
	}
	g.churnAt = never
	if r.chance(0.3) {
		g.churnAt = first + int64(r.Float64()*1.5*float64(span))
		g.trend -= 0.6 // unhappy guests drift away
	}
	g.nextVisit = g.visitTime(first)
	g.nextTake, g.nextBirthday, g.nextAttend = never, never, never
	if g.online {
		g.nextTake = g.takeawayTime(first + days(r.exp(1/g.takeRate)))
	}
	if g.birthday != "" {
		g.nextBirthday = g.birthdayTime(first)
	}
	g.ev = sort.Search(len(w.events), func(i int) bool { return w.events[i].announce >= first })
	g.camp = sort.Search(len(w.rcampaigns), func(i int) bool { return w.rcampaigns[i].at >= first })
	g.schedule()
	return g
}

func (g *guest) timeline() *timeline { return &g.tl }

// visitTime puts a visit on or after day t at lunch or dinner, leaning
// towards Fridays and Saturdays.
func (g *guest) visitTime(t int64) int64 {
	if t == never || t >= g.churnAt {
		return never
	}
	lt := local(t, restaurantZone)
	y, m, dd := lt.Date()
	if g.r.chance(0.35) {
		for i := 0; i < 3; i++ {
			if wd := time.Date(y, m, dd, 12, 0, 0, 0, restaurantZone).Weekday(); wd == time.Friday || wd == time.Saturday {
				break
			}
			dd++
		}
	}
	var h float64
	if g.r.chance(0.35) {
		h = g.r.uniform(11.5, 14)
	} else {
		h = g.r.uniform(17.5, 21)
	}
	if s := clockOn(y, m, dd, restaurantZone, h); s > t {
		return s
	}
	return clockOn(y, m, dd+1, restaurantZone, h)
}

func (g *guest) takeawayTime(t int64) int64 {
	if t >= g.churnAt || t >= g.w.end {
		return never
	}
	h := g.r.uniform(17, 20.5)
	if g.r.chance(0.3) {
		h = g.r.uniform(11.5, 13.5)
	}
	if s := clock(t, restaurantZone, h, 0); s > t {
		return s
	}
	return clock(t, restaurantZone, h, 1)
}

// birthdayTime is the next birthday dinner (in the days before a birthday)
// after t.
func (g *guest) birthdayTime(t int64) int64 {
	lt := toTime(t).In(restaurantZone)
	for y := lt.Year(); y <= lt.Year()+1; y++ {
		b := clockOn(y, time.Month(g.bMonth), g.bDay-g.r.IntN(4), restaurantZone, g.r.uniform(18, 20.5))
		if b > t {
			return b
		}
	}
	return never
}

func (g *guest) schedule() {
	ev, camp := int64(never), int64(never)
	if g.ev < len(g.w.events) {
		ev = g.w.events[g.ev].announce
	}
	if g.camp < len(g.w.rcampaigns) {
		camp = g.w.rcampaigns[g.camp].at
	}
	g.tl.next = min(g.nextVisit, g.nextTake, g.nextBirthday, g.nextAttend, ev, camp)
}

func (g *guest) step() {
	now := g.tl.next
	switch now {
	case g.nextVisit:
		g.visit(now, "", -1)
		gap := g.meanGap * g.r.gamma(3, 1.0/3)
		switch toTime(now).In(restaurantZone).Month() {
		case time.December:
			gap *= 0.8
		case time.January:
			gap *= 1.2
		}
		g.nextVisit = g.visitTime(now + days(math.Max(gap, 1)))
	case g.nextAttend:
		e := g.attend
		g.nextAttend, g.attend = never, nil
		g.visit(now, e.name, max(e.location, 0))
	case g.nextBirthday:
		if g.joined && now < g.churnAt && g.r.chance(0.4) {
			g.visit(now, "birthday", -1)
		}
		g.nextBirthday = g.birthdayTime(now + 30*day)
	case g.nextTake:
		g.takeaway(now)
		g.nextTake = g.takeawayTime(now + days(math.Max(1, g.r.exp(1/g.takeRate))))
	default:
		if g.ev < len(g.w.events) && g.w.events[g.ev].announce == now {
			g.rsvp(now, &g.w.events[g.ev])
			g.ev++
		} else {
			g.newsletter(now, &g.w.rcampaigns[g.camp])
			g.camp++
		}
	}
	g.schedule()
}

// ids returns a context carrying what a restaurant system knows of the
// guest: their loyalty card (and sometimes phone) once they are a member,
// else the phone they booked with, else their email.
func (g *guest) ids(pos bool) map[string]any {
	switch {
	case pos && g.joined:
		if g.phone != "" && g.r.chance(0.5) {
			return ctxTraits("loyalty_number", g.loyalty, "phone", g.phone)
		}
		return ctxTraits("loyalty_number", g.loyalty)
	case pos && g.phone != "":
		return ctxTraits("phone", g.phone)
	case g.email != "":
		return ctxTraits("email", g.email, "phone", g.phone)
	}
	return ctxTraits("phone", g.phone)
}

func (g *guest) identify(at int64, source, store string) {
	traits := map[string]any{"first_name": g.first, "last_name": g.last, "home_location": locations[g.home].Name}
	if g.email != "" {
		traits["email"] = g.email
		traits["email_consent"] = g.consent
	}
	if g.phone != "" {
		traits["phone"] = g.phone
	}
	if g.joined {
		traits["loyalty_number"] = g.loyalty
		traits["loyalty_joined_at"] = toTime(g.joinedAt).Format(time.RFC3339)
	}
	if g.birthday != "" {
		traits["birthday"] = g.birthday
	}
	g.tl.push(at, kiln.Event{SourceID: source, Type: kiln.Identify, Store: store, Traits: traits})
}

// visit is a dine-in visit starting at at; the bill closes an hour or two
// later. occasion names a birthday or restaurant event, if any.
// li is the location, or -1 for the guest's choice: mostly their home one.
func (g *guest) visit(at int64, occasion string, li int) {
	if li < 0 {
		li = g.home
		if occasion == "" && g.r.chance(0.15) {
			li = g.r.IntN(len(locations))
		}
	}
	loc := &locations[li]
	g.visits++
	if g.member && !g.joined && g.visits >= g.joinVisit {
		g.joined, g.joinedAt, g.introduced = true, at, true
		g.identify(at, loc.SourceID, loc.Store)
	} else if g.joined && !g.introduced {
		g.introduced = true
		g.identify(at, loc.SourceID, loc.Store)
	}

	party := []int{1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 5, 6, 8}[g.r.IntN(13)]
	if g.rhythm == weekly && g.r.chance(0.5) {
		party = g.r.between(1, 2)
	}
	if occasion == "birthday" {
		party = g.r.between(4, 10)
	}
	covers := party
	if party > 2 && g.r.chance(0.1) {
		covers-- // someone did not make it
	}
	dishes, subtotal := g.dishes(at, covers, false)
	tax := round2(subtotal * salesTax)
	end := at + int64(g.r.uniform(55, 130)*float64(minute))
	visitID := fmt.Sprintf("V%05d-%03d", g.n, g.visits)
	daypart := "dinner"
	if h := toTime(at).In(restaurantZone).Hour(); h < 16 {
		daypart = "lunch"
	}
	props := map[string]any{
		"visit_id": visitID, "location": loc.Name, "party_size": float64(party), "covers": float64(covers),
		"dishes": dishes, "revenue": subtotal, "tax": tax, "tip": round2(subtotal * g.r.uniform(0.15, 0.22)),
		"spend": round2(subtotal + tax), "currency": RestaurantCurrency, "daypart": daypart,
		"reservation": g.rhythm != occasional || g.r.chance(0.4), "table": fmt.Sprintf("T%d", g.r.between(1, 28)),
	}
	if occasion != "" {
		props["occasion"] = occasion
	}
	g.tl.push(end, kiln.Event{SourceID: loc.SourceID, Type: kiln.Track, Name: kiln.VisitCompleted, Store: loc.Store,
		Properties: props, Context: g.ids(true)})

	if g.joined {
		g.memberVisits++
		rewards := map[int]string{5: "Free gata", 10: "Free mezze platter", 25: "Bottle of Areni Noir", 50: "Dinner for two", 100: "Chef's table for six"}
		if reward, ok := rewards[g.memberVisits]; ok {
			g.tl.push(end+minute, kiln.Event{SourceID: loc.SourceID, Type: kiln.Track, Name: kiln.LoyaltyMilestone, Store: loc.Store,
				Properties: map[string]any{"milestone": float64(g.memberVisits), "milestone_name": ordinal(g.memberVisits) + " visit",
					"reward": reward, "loyalty_number": g.loyalty, "location": loc.Name},
				Context: ctxTraits("loyalty_number", g.loyalty)})
		}
	}
	if g.r.chance(g.feedbackP) {
		years := float64(at-g.w.start) / float64(year)
		mean := g.sat + g.trend*years
		if g.churnAt != never && g.churnAt-at < 120*day {
			mean -= 0.8 // the last visits before a guest stays away
		}
		rating := int(math.Round(math.Max(1, math.Min(5, mean+0.6*g.r.NormFloat64()))))
		fp := map[string]any{"rating": float64(rating), "visit_id": visitID, "location": loc.Name, "channel": "survey"}
		if g.r.chance(0.5) {
			fp["comment"] = pick(g.r, feedbackComments[rating])
		}
		g.tl.push(end+int64(g.r.uniform(2, 30)*float64(hour)), kiln.Event{SourceID: SourceRestaurantWeb, Type: kiln.Track,
			Name: kiln.FeedbackGiven, Store: loc.Store, Properties: fp, Context: g.ids(false)})
	}
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

// dishes orders from the menu in season at at for covers people: a main
// each (often a favourite, sometimes the seasonal special), shared mezze
// and bread, desserts, drinks and wine; takeaway leaves out the drinks.
func (g *guest) dishes(at int64, covers int, takeaway bool) ([]any, float64) {
	x := g.w.menu
	special := x.season[SeasonAt(toTime(at))]
	var order []int
	qty := map[int]int{}
	add := func(i int) {
		if qty[i] == 0 {
			order = append(order, i)
		}
		qty[i]++
	}
	seasonal := func(course string) (int, bool) {
		var c []int
		for _, i := range special {
			if menu[i].Course == course {
				c = append(c, i)
			}
		}
		if len(c) == 0 {
			return 0, false
		}
		return pick(g.r, c), true
	}
	for i := 0; i < covers; i++ {
		if g.r.chance(0.85) {
			if s, ok := seasonal(CourseMains); ok && g.r.chance(0.25) {
				add(s)
			} else if s, ok := seasonal(CourseGrill); ok && g.r.chance(0.25) {
				add(s)
			} else if g.r.chance(0.5) {
				add(pick(g.r, g.favs))
			} else {
				add(pick(g.r, append(append([]int(nil), x.course[CourseGrill]...), x.course[CourseMains]...)))
			}
		}
	}
	for i := (covers+1)/2 + g.r.IntN(2); i > 0; i-- {
		if s, ok := seasonal(CourseMezze); ok && g.r.chance(0.3) {
			add(s)
		} else {
			add(pick(g.r, x.course[CourseMezze]))
		}
	}
	if s, ok := seasonal(CourseBread); ok && g.r.chance(0.4) {
		add(s)
	}
	if g.r.chance(0.45) {
		add(pick(g.r, x.course[CourseBread][:2])) // lahmajun or khachapuri
	}
	if !takeaway {
		for i := (covers + 1) / 2; i > 0; i-- {
			add(x.course[CourseBread][2]) // lavash basket
		}
	}
	for i := 0; i < covers; i++ {
		if g.r.chance(0.35) {
			if s, ok := seasonal(CourseDesserts); ok && g.r.chance(0.3) {
				add(s)
			} else {
				add(pick(g.r, x.course[CourseDesserts]))
			}
		}
		if takeaway {
			continue
		}
		if g.r.chance(0.45) {
			add(pick(g.r, x.course[CourseHot]))
		}
		if g.r.chance(0.3) {
			add(pick(g.r, x.course[CourseSoft]))
		}
	}
	if !takeaway && covers >= 2 && g.r.chance(0.45) {
		wines := x.course[CourseWine]
		if covers >= 3 {
			for i := covers / 3; i > 0; i-- {
				add(pick(g.r, []int{wines[2], wines[3]}))
			}
		} else {
			for i := 0; i < covers; i++ {
				add(pick(g.r, []int{wines[0], wines[1], wines[4]}))
			}
		}
		if g.r.chance(0.15) {
			add(x.course[CourseSpirits][0])
		}
	}
	if len(order) == 0 {
		add(pick(g.r, x.course[CourseMezze]))
	}
	out := make([]any, len(order))
	subtotal := 0.0
	for k, i := range order {
		d := &menu[i]
		out[k] = map[string]any{"product_id": d.ID, "sku": d.ID, "name": d.Name, "category": d.Course, "price": d.Price, "quantity": float64(qty[i])}
		subtotal += d.Price * float64(qty[i])
	}
	return out, round2(subtotal)
}

// takeaway is an online order for pickup or delivery. The first one
// creates the guest's online account, which links their email to the
// phone they book tables with.
func (g *guest) takeaway(at int64) {
	loc := &locations[g.home]
	g.takes++
	if !g.onlineKnown {
		g.onlineKnown = true
		g.identify(at, SourceRestaurantWeb, loc.Store)
	}
	covers := []int{1, 1, 2, 2, 2, 3, 4, 4, 6}[g.r.IntN(9)]
	dishes, subtotal := g.dishes(at, covers, true)
	tax := round2(subtotal * salesTax)
	fee := 0.0
	fulfillment := "pickup"
	if g.r.chance(0.4) {
		fulfillment, fee = "delivery", 4.99
	}
	tip := round2(subtotal * g.r.uniform(0.1, 0.2))
	g.tl.push(at+int64(g.r.uniform(2, 8)*float64(minute)), kiln.Event{SourceID: SourceRestaurantWeb, Type: kiln.Track,
		Name: kiln.OrderCompleted, Store: loc.Store, Context: ctxTraits("email", g.email, "phone", g.phone),
		Properties: map[string]any{
			"order_id": fmt.Sprintf("TK%05d-%03d", g.n, g.takes), "affiliation": RestaurantName + " " + loc.Name,
			"location": loc.Name, "fulfillment": fulfillment, "party_size": float64(covers), "products": dishes, "revenue": subtotal, "tax": tax,
			"shipping": fee, "tip": tip, "total": round2(subtotal + tax + fee + tip), "currency": RestaurantCurrency,
		}})
}

// rsvp decides whether the guest answers an event's invitation; regulars
// and members are likelier to. A "yes" usually means a visit on the night.
func (g *guest) rsvp(at int64, e *restEvent) {
	if at >= g.churnAt || e.location >= 0 && e.location != g.home {
		return
	}
	p := map[string]float64{weekly: 0.2, monthly: 0.07, occasional: 0.015}[g.rhythm]
	if e.location < 0 {
		p *= 1.5
	}
	if g.joined {
		p *= 1.5
	}
	if !g.r.chance(p) {
		return
	}
	li := e.location
	if li < 0 {
		li = 0
	}
	t := at + days(g.r.uniform(0, 18))
	response := "yes"
	if g.r.chance(0.1) {
		response = "maybe"
	}
	g.tl.push(t, kiln.Event{SourceID: SourceRestaurantWeb, Type: kiln.Track, Name: kiln.EventRSVPed, Store: locations[li].Store,
		Context: g.ids(false), Properties: map[string]any{
			"event_id": e.id, "event_name": e.name, "event_date": toTime(e.at).In(restaurantZone).Format(time.RFC3339),
			"location": locations[li].Name, "party_size": float64(g.r.between(1, 4)), "response": response,
		}})
	if response == "yes" && g.attend == nil && g.r.chance(0.85) {
		g.attend, g.nextAttend = e, e.at+int64(g.r.uniform(0, 45)*float64(minute))
	}
}

func (g *guest) newsletter(at int64, cp *campaign) {
	// Guests who stopped coming still get the letters, and open fewer.
	if !g.consent || !(g.joined || g.onlineKnown) {
		return
	}
	p := g.openP * cp.appeal
	if at >= g.churnAt {
		p *= 0.3
	}
	if !g.r.chance(p) {
		return
	}
	openAt := at + int64(math.Min(g.r.logNormal(math.Log(240), 1.2), 5*24*60)*float64(minute))
	g.tl.push(openAt, emailEvent(g.email, RestaurantName, kiln.EmailOpened, cp, nil))
	if g.r.chance(0.2) {
		g.tl.push(openAt+int64(g.r.uniform(5, 90)*1000), emailEvent(g.email, RestaurantName, kiln.EmailLinkClicked, cp, map[string]any{"url": restDomain + cp.path}))
	}
}
