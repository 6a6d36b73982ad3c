package demo

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kiln-cdp/kiln"
)

const (
	shopDomain = "https://hearthandglaze.example"
	vatRate    = 0.20
	// peakSeason bounds shopSeason, for thinning.
	peakSeason = 2.6
	// abandonShare is the rate of abandoned checkouts against the
	// customer's order rate.
	abandonShare = 0.6
)

// shopSeason is the shop's demand multiplier at ms (UK dates): Black Friday
// week and the run-up to Christmas are the year's peak, January and summer
// are quiet.
func shopSeason(ms int64) float64 {
	t := local(ms, shopZone)
	d := t.Day()
	switch t.Month() {
	case time.November:
		if d >= 21 {
			return 2.6
		}
		return 1.5
	case time.December:
		switch {
		case d <= 17:
			return 2.2
		case d <= 24:
			return 1.1
		}
		return 1.3 // Boxing Day sale
	case time.January:
		if d <= 8 {
			return 1.2
		}
		return 0.7
	case time.February:
		return 0.75
	case time.March:
		return 1.05 // Mother's Day gifts
	case time.July, time.August:
		return 0.8
	case time.October:
		return 1.05
	}
	return 0.9
}

// giftShare is the chance an order is a gift at ms.
func giftShare(ms int64) float64 {
	t := local(ms, shopZone)
	switch t.Month() {
	case time.November:
		return 0.25
	case time.December:
		if t.Day() <= 22 {
			return 0.45
		}
		return 0.1
	case time.February, time.March, time.May, time.June:
		return 0.14
	}
	return 0.07
}

// coupon returns the promotion running at ms, if any.
func coupon(ms int64) (code string, pct float64) {
	t := local(ms, shopZone)
	switch {
	case t.Month() == time.November && t.Day() >= 21 || t.Month() == time.December && t.Day() <= 2:
		return "BLACKFRIDAY25", 0.25
	case t.Month() == time.December && t.Day() >= 26 || t.Month() == time.January && t.Day() <= 8:
		return "SALE20", 0.20
	}
	return "", 0
}

// Hour-of-day weights of web sessions and of the flagship's till (UK time).
var (
	webHours  = [24]float64{0.3, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1, 1.5, 2, 2.2, 2.3, 2.6, 2.4, 2.2, 2.1, 2, 2.2, 2.8, 3.3, 3.5, 3, 2, 1}
	tillHours = [24]float64{9: 1, 10: 2, 11: 3, 12: 3.5, 13: 3.5, 14: 3, 15: 3, 16: 2.5, 17: 1}
)

// ukPhoneBlocks are number ranges Ofcom keeps for drama, a thousand each.
var ukPhoneBlocks = []string{
	"+447700900", "+442079460", "+441134960", "+441144960", "+441154960", "+441164960", "+441174960",
	"+441184960", "+441214960", "+441314960", "+441414960", "+441514960", "+441614960",
}

// campaign is one newsletter send.
type campaign struct {
	id, name, subject, path string
	at                      int64
	appeal                  float64 // scales open rates
}

// shopCampaigns schedules the shop's newsletters: one roughly every ten
// days, plus the retail calendar's big sends.
func shopCampaigns(seed int64, start, end int64) []campaign {
	r := newRNG(seed, streamSchedule, 1)
	themes := []struct{ name, subject, path string }{
		{"New In: %s", "Meet %s, our newest pattern", "/collections/%s"},
		{"Pattern Spotlight: %s", "Why everyone is talking about %s", "/collections/%s"},
		{"The Teaware Edit", "Everything for the perfect pot", "/collections/teaware"},
		{"Setting the Table", "How to lay a table for six", "/journal/setting-the-table"},
		{"Glassware for Long Evenings", "Raise a glass", "/collections/glassware"},
		{"Back in Stock: %s", "It's back: %s", "/collections/%s"},
		{"Tea of the Month", "Mountain Thyme, straight from Armenia", "/collections/tea"},
		{"Serveware for Sharing", "Platters, bowls and cake stands", "/collections/serveware"},
	}
	var cs []campaign
	add := func(name, subject, path string, at int64, appeal float64) {
		if at < start || at >= end {
			return
		}
		cs = append(cs, campaign{name: name, subject: subject, path: path, at: at, appeal: appeal})
	}
	for t := start + days(r.uniform(1, 10)); t < end; t += days(r.uniform(8, 12)) {
		th := themes[r.IntN(len(themes))]
		pat := patterns[r.IntN(len(patterns))].name
		name, subject, path := th.name, th.subject, th.path
		if containsVerb(name) {
			name = fmt.Sprintf(name, pat)
		}
		if containsVerb(subject) {
			subject = fmt.Sprintf(subject, pat)
		}
		if containsVerb(path) {
			path = fmt.Sprintf(path, slug(pat))
		}
		add(name, subject, path, clock(t, shopZone, 9+float64(r.IntN(90))/60, 0), 1)
	}
	for y := toTime(start).Year(); y <= toTime(end).Year(); y++ {
		at := func(m time.Month, d, h int) int64 { return time.Date(y, m, d, h, 0, 0, 0, shopZone).UnixMilli() }
		bf := blackFriday(y)
		add("Valentine's Gifts", "Gifts for the one who loves tea", "/gifts/valentines", at(2, 5, 8), 1.1)
		add("Mother's Day Gift Guide", "Gifts Mum will treasure", "/gifts/mothers-day", at(3, 1, 8), 1.2)
		add("Wedding List Season", "Build your wedding list with us", "/wedding-list", at(5, 10, 8), 0.9)
		add("Summer Hosting", "Everything for alfresco dining", "/collections/summer", at(6, 20, 8), 0.9)
		add("Black Friday Preview", "Early access starts tomorrow", "/sale", bf.AddDate(0, 0, -3).Add(8*time.Hour).UnixMilli(), 1.3)
		add("Black Friday: 25% Off Everything", "25% off everything, this weekend only", "/sale", bf.Add(7*time.Hour).UnixMilli(), 1.5)
		add("Cyber Monday: Last Chance", "Last chance for 25% off", "/sale", bf.AddDate(0, 0, 3).Add(7*time.Hour).UnixMilli(), 1.2)
		add("Christmas Gift Guide", "Gifts for everyone on your list", "/gifts/christmas", at(12, 5, 8), 1.3)
		add("Last Order Dates for Christmas", "Order by 18 December for Christmas delivery", "/delivery", at(12, 14, 8), 1.2)
		add("Winter Sale", "Up to 20% off in our Winter Sale", "/sale", at(12, 26, 8), 1.2)
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].at < cs[j].at })
	for i := range cs {
		cs[i].id = fmt.Sprintf("cmp-%03d", i+1)
	}
	return cs
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 's' {
			return true
		}
	}
	return false
}

// blackFriday returns the day after the fourth Thursday of November.
func blackFriday(y int) time.Time {
	t := time.Date(y, time.November, 1, 0, 0, 0, 0, shopZone)
	for t.Weekday() != time.Thursday {
		t = t.AddDate(0, 0, 1)
	}
	return t.AddDate(0, 0, 22)
}

func slug(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b = append(b, c)
		case len(b) > 0 && b[len(b)-1] != '-':
			b = append(b, '-')
		}
	}
	if len(b) > 0 && b[len(b)-1] == '-' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// newShop makes the shop's customers and anonymous visitors.
func newShop(w *world, customers int) []actor {
	w.shop = newShopIndex()
	w.campaigns = shopCampaigns(w.seed, w.start, w.end)
	actors := make([]actor, 0, customers+customers/4)
	for n := 1; n <= customers; n++ {
		actors = append(actors, newShopper(w, n))
	}
	for n := 1; n <= customers/4; n++ {
		actors = append(actors, newVisitor(w, n))
	}
	return actors
}

type cartLine struct {
	p   int // catalog position
	qty int
}

// shopper is one shop customer.
type shopper struct {
	tl timeline
	w  *world
	r  rng
	n  int

	userID, first, last, email, phone, birthday string
	place                                       int
	created                                     int64
	intro                                       bool // has identified (signed up, or logged in for the first time in the window)
	existing                                    bool // signed up before the window
	trade                                       bool
	company, vatID, industry                    string

	consent, unsub, bounced bool
	openP, clickP           float64

	rate     float64 // orders per day while alive
	pDrop    float64 // chance of dropping out after each order
	alive    bool
	spendMu  float64 // log of the typical order value
	catW     []float64
	fav      int // favourite pattern
	devices  []string
	orders   int
	checkout int
	tillUser bool // sometimes buys at the York flagship
	tea      bool

	nextIntro, nextOrder, nextAbandon, nextBrowse, nextRefill, nextRecover int64
	firstOrder                                                             bool // the next order is the one the customer signs up with
	orderAtTill                                                            bool
	recover                                                                []cartLine
	camp                                                                   int // next newsletter
}

func newShopper(w *world, n int) *shopper {
	r := newRNG(w.seed, streamCustomer, n)
	c := &shopper{w: w, r: r, n: n, alive: true}
	c.tl = timeline{end: w.end, kind: kindCustomer}
	c.userID = fmt.Sprintf("C%06d", 100000+n)
	c.first, c.last = pick(r, ukFirst), pick(r, ukLast)
	// Customers 50 and 51 of every hundred are a couple sharing a surname,
	// a town and the home computer: both sign in on it, so one anonymous
	// id carries two user ids (which identity resolution must not merge).
	var home rng
	if h := n % 100; h == 50 || h == 51 {
		home = newRNG(w.seed, streamHousehold, n-h)
		c.last = pick(home, ukLast)
	}
	domains := []string{"example.com", "example.org", "mail.example.com"}
	c.email = localPart(c.first, c.last, n, r.IntN(4)) + "@" + domains[r.IntN(len(domains))]
	c.place = r.IntN(len(ukPlaces))
	if r.chance(0.45) && n/1000 < len(ukPhoneBlocks) {
		c.phone = fmt.Sprintf("%s%03d", ukPhoneBlocks[n/1000], n%1000)
	}
	if r.chance(0.35) {
		c.birthday = fmt.Sprintf("%d-%02d-%02d", r.between(1950, 2003), r.between(1, 12), r.between(1, 28))
	}
	c.trade = r.chance(0.025)
	if c.trade {
		bk := pick(r, businessKinds)
		c.company = pick(r, businessFirst) + " " + bk.kind
		c.industry = bk.industry
		c.vatID = fmt.Sprintf("GB%09d", r.IntN(1_000_000_000))
		c.rate = r.gamma(2, 1.2) / 365
		c.pDrop = r.beta(1, 8)
	} else {
		c.rate = r.gamma(0.9, 2.2) / 365
		c.pDrop = r.beta(1.2, 4)
	}
	c.spendMu = math.Log(r.logNormal(math.Log(48), 0.45))
	c.catW = make([]float64, len(Categories))
	for i, base := range []float64{0.36, 0.26, 0.14, 0.12, 0.07, 0.05} {
		c.catW[i] = base * r.gamma(1.5, 1)
	}
	pw := make([]float64, len(patterns))
	for i, p := range patterns {
		pw[i] = p.popularity
		if c.trade && !p.trade {
			pw[i] = 0
		}
	}
	c.fav = r.weighted(pw)
	c.consent = r.chance(0.72)
	c.bounced = r.chance(0.01) // marked now, bounces on the first send
	c.openP = r.beta(2, 5)
	c.clickP = r.beta(1.5, 7)
	c.tillUser = !c.trade && r.chance(0.15)
	c.tea = r.chance(0.25)
	c.devices = []string{r.uuid()}
	if home.Rand != nil {
		c.place = home.IntN(len(ukPlaces))
		c.devices[0] = home.uuid()
	}
	c.nextIntro, c.nextOrder, c.nextAbandon, c.nextBrowse, c.nextRefill, c.nextRecover = never, never, never, never, never, never

	// The customer base is everyone who ordered in the window, as a shop
	// would count its customers: each customer orders at least once.
	span := w.end - w.start
	if r.chance(0.25) {
		// A customer from before the window: signed up earlier, shows up
		// (logs in, or is synced from the shop's CRM) early in the window.
		// A slow buyer's one order in the window falls anywhere in it.
		c.existing = true
		c.created = w.start - days(r.uniform(30, 3*365))
		c.nextIntro = w.start + days(r.uniform(0, 45))
		c.nextOrder = c.arrival(w.start, c.rate)
		if c.nextOrder == never {
			c.nextOrder = c.soon(w.start + int64(r.Float64()*float64(span-min(14*day, span/4))))
		}
		c.nextAbandon = c.arrival(w.start, c.rate*abandonShare)
		c.nextBrowse = c.arrival(w.start, c.browseRate())
	} else {
		// A new customer: first seen browsing anonymously, signs up at the
		// first checkout (or, for some, at the newsletter box).
		var t int64
		for {
			t = w.start + int64(r.Float64()*float64(span-min(14*day, span/4)))
			growth := 0.75 + 0.25*float64(t-w.start)/float64(span)
			if r.chance(shopSeason(t) / peakSeason * growth) {
				break
			}
		}
		h := r.hourOf(&webHours)
		if t = clock(t, shopZone, h, 0); t < w.start {
			t = clock(t, shopZone, h, 1)
		}
		c.created = t
		if r.chance(0.08) {
			// Signs up at the newsletter box; the first order follows
			// within a couple of months (the welcome code helps).
			c.nextIntro = t
			c.nextOrder = c.soon(t + int64(r.Float64()*float64(min(60*day, (w.end-t)*3/4))))
		} else {
			c.nextOrder = t
			c.firstOrder = true
		}
		c.nextAbandon = c.arrival(t, c.rate*abandonShare)
		if r.chance(0.5) {
			c.nextBrowse = t - days(r.uniform(1, 14))
			if c.nextBrowse < w.start {
				c.nextBrowse = c.arrival(t, c.browseRate())
			}
		} else {
			c.nextBrowse = c.arrival(t, c.browseRate())
		}
	}
	c.orderAtTill = c.tillUser && !c.firstOrder && r.chance(0.5)
	c.nextOrder = c.placeOrder(c.nextOrder)
	c.camp = sort.Search(len(w.campaigns), func(i int) bool { return w.campaigns[i].at >= max(c.created, w.start) })
	c.schedule()
	return c
}

func (c *shopper) timeline() *timeline { return &c.tl }

func (c *shopper) browseRate() float64 {
	if !c.alive {
		return 0.6 / 365
	}
	return c.rate*0.6 + 1.0/365
}

// arrival returns the next time after from of a Poisson process with the
// given daily rate, thinned by the shop's seasons, at a web-like hour.
func (c *shopper) arrival(from int64, perDay float64) int64 {
	if perDay <= 0 {
		return never
	}
	t := from
	for {
		t += days(c.r.exp(1 / (perDay * peakSeason)))
		if t >= c.w.end || t < from {
			return never
		}
		if c.r.chance(shopSeason(t) / peakSeason) {
			break
		}
	}
	h := c.r.hourOf(&webHours)
	if s := clock(t, shopZone, h, 0); s > from {
		return s
	}
	return clock(t, shopZone, h, 1)
}

// soon returns a time a day or so after from, at a web-like hour, and
// within the window if from leaves room.
func (c *shopper) soon(from int64) int64 {
	if t := c.arrival(from, 1); t < c.w.end {
		return t
	}
	return from + hour
}

// placeOrder moves an order time to the flagship's opening hours when the
// order will be made at the till.
func (c *shopper) placeOrder(t int64) int64 {
	if !c.orderAtTill || t == never {
		return t
	}
	h := c.r.hourOf(&tillHours)
	if s := clock(t, shopZone, h, 0); s >= t {
		return s
	}
	return clock(t, shopZone, h, 1)
}

func (c *shopper) nextCampaign() int64 {
	if c.camp >= len(c.w.campaigns) {
		return never
	}
	return c.w.campaigns[c.camp].at
}

func (c *shopper) schedule() {
	c.tl.next = min(c.nextIntro, c.nextOrder, c.nextAbandon, c.nextBrowse, c.nextRefill, c.nextRecover, c.nextCampaign())
}

func (c *shopper) step() {
	now := c.tl.next
	switch now {
	case c.nextIntro:
		c.nextIntro = never
		switch {
		case c.intro:
		case c.existing:
			c.identify(now, "", "")
		default:
			// The newsletter box on the website: the browser's anonymous
			// history joins the new customer.
			c.identify(now, c.devices[0], "newsletter")
		}
	case c.nextOrder:
		c.nextOrder = never
		kind := sessRegular
		if c.firstOrder {
			kind = sessFirst
			c.firstOrder = false
		}
		c.order(now, kind, nil)
		if c.alive {
			c.orderAtTill = c.tillUser && c.r.chance(0.5)
			c.nextOrder = c.placeOrder(c.arrival(now, c.rate))
		}
	case c.nextRecover:
		c.nextRecover = never
		c.order(now, sessRecover, c.recover)
		c.recover = nil
	case c.nextRefill:
		c.nextRefill = never
		if c.alive {
			c.order(now, sessRefill, nil)
		}
	case c.nextAbandon:
		c.nextAbandon = never
		if c.alive {
			c.abandon(now)
			c.nextAbandon = c.arrival(now, c.rate*abandonShare)
		}
	case c.nextBrowse:
		c.nextBrowse = never
		c.browse(now, nil)
		c.nextBrowse = c.arrival(now, c.browseRate())
	default:
		cp := &c.w.campaigns[c.camp]
		c.camp++
		c.newsletter(now, cp)
	}
	c.schedule()
}

type sessionKind uint8

const (
	sessRegular sessionKind = iota
	sessFirst               // signs up at checkout
	sessRecover             // comes back for an abandoned basket
	sessRefill              // runs out of tea
)

// identify sends an identify call with the customer's traits. A sign-up
// (method not "") also sends "Signed Up" and, for business buyers, a group call.
func (c *shopper) identify(at int64, anon string, method string) {
	c.intro = true
	traits := map[string]any{
		"email":         c.email,
		"first_name":    c.first,
		"last_name":     c.last,
		"created_at":    toTime(c.created).Format(time.RFC3339),
		"email_consent": c.consent && !c.unsub,
		"address":       map[string]any{"city": ukPlaces[c.place].city, "postal_code": ukPlaces[c.place].district, "country": "GB"},
		"customer_type": "consumer",
	}
	if c.phone != "" {
		traits["phone"] = c.phone
	}
	if c.birthday != "" {
		traits["birthday"] = c.birthday
	}
	if c.trade {
		traits["customer_type"] = "business"
		traits["company"] = c.company
		traits["vat_id"] = c.vatID
		traits["industry"] = c.industry
	}
	c.tl.push(at, kiln.Event{SourceID: SourceWebstore, Type: kiln.Identify, UserID: c.userID, AnonymousID: anon, Traits: traits})
	if method == "" {
		return
	}
	c.tl.push(at+1000, kiln.Event{SourceID: SourceWebstore, Type: kiln.Track, Name: kiln.SignedUp, UserID: c.userID, AnonymousID: anon,
		Properties: map[string]any{"method": method}})
	if c.trade {
		c.tl.push(at+2000, kiln.Event{SourceID: SourceWebstore, Type: kiln.Group, UserID: c.userID, AnonymousID: anon,
			GroupID: "org-" + c.vatID, Traits: map[string]any{"name": c.company, "vat_id": c.vatID, "industry": c.industry}})
	}
}

// web is a web session's state: the device, whether the customer is known
// on it, and the running clock.
type web struct {
	dev      string
	loggedIn bool
	t        int64
	ctx      map[string]any
}

func (c *shopper) track(s *web, name string, props map[string]any) {
	ev := kiln.Event{SourceID: SourceWebstore, Type: kiln.Track, Name: name, AnonymousID: s.dev, Properties: props, Context: s.ctx}
	if s.loggedIn {
		ev.UserID = c.userID
	}
	c.tl.push(s.t, ev)
}

// startWeb begins a web session: on the customer's usual device (signed in)
// most of the time, else on a new device where they are anonymous until
// they sign in.
func (c *shopper) startWeb(at int64, usual bool) *web {
	s := &web{t: at}
	switch {
	case usual:
		s.dev, s.loggedIn = c.devices[0], c.intro
	case !c.intro:
		s.dev = c.devices[0]
	case c.r.chance(0.72):
		s.dev, s.loggedIn = pick(c.r, c.devices), true
	default:
		s.dev = c.r.uuid()
		c.devices = append(c.devices, s.dev)
	}
	if c.r.chance(0.5) {
		title, path := "Home", "/"
		if c.r.chance(0.5) {
			cat := Categories[c.r.weighted(c.catW)]
			title, path = titleCase(cat), "/collections/"+slug(cat)
		}
		ev := kiln.Event{SourceID: SourceWebstore, Type: kiln.Page, Name: title, AnonymousID: s.dev,
			Properties: map[string]any{"path": path, "url": shopDomain + path, "title": title + " | " + ShopName}}
		if s.loggedIn {
			ev.UserID = c.userID
		}
		c.tl.push(s.t, ev)
		s.t += int64(c.r.uniform(5, 60) * 1000)
	}
	return s
}

func titleCase(s string) string {
	b := []byte(s)
	for i := range b {
		if (i == 0 || b[i-1] == ' ') && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// productProps are a product's Segment e-commerce properties.
func (c *shopper) productProps(p int, qty int) map[string]any {
	pr := &catalog[p]
	m := map[string]any{
		"product_id": pr.ID, "sku": pr.SKU, "name": pr.Name, "category": pr.Category,
		"price": pr.Price, "quantity": float64(qty), "currency": ShopCurrency,
	}
	if pr.Pattern != "" {
		m["pattern"] = pr.Pattern
	}
	return m
}

// view sends "Product Viewed" for the cart's products and a few others.
func (c *shopper) view(s *web, cart []cartLine, extra int) {
	seen := make([]int, 0, len(cart)+extra)
	for i := 0; i < extra; i++ {
		seen = append(seen, c.pickProduct(false))
	}
	for _, l := range cart {
		seen = append(seen, l.p)
	}
	for _, p := range seen {
		props := c.productProps(p, 1)
		delete(props, "quantity")
		props["url"] = shopDomain + "/products/" + slug(catalog[p].Name)
		c.track(s, kiln.ProductViewed, props)
		s.t += int64(c.r.uniform(15, 180) * 1000)
	}
}

func (c *shopper) add(s *web, cart []cartLine, cartID string) {
	for _, l := range cart {
		props := c.productProps(l.p, l.qty)
		props["cart_id"] = cartID
		c.track(s, kiln.ProductAdded, props)
		s.t += int64(c.r.uniform(10, 90) * 1000)
	}
}

// signIn identifies the customer on the session's device: their sign-up if
// they have not identified yet. Sign-in links the device's anonymous
// history to the customer.
func (c *shopper) signIn(s *web) {
	if s.loggedIn {
		return
	}
	method := ""
	if !c.intro && !c.existing {
		method = "checkout"
	}
	c.identify(s.t, s.dev, method)
	s.loggedIn = true
	s.t += 5000
}

// browse is a session that looks at products and perhaps adds one to the
// basket, without checking out. From a newsletter click it carries the
// campaign.
func (c *shopper) browse(at int64, cp *campaign) {
	s := c.startWeb(at, cp != nil)
	if cp != nil {
		s.ctx = map[string]any{"campaign": map[string]any{"name": cp.name, "source": "newsletter", "medium": "email"}}
	}
	c.view(s, nil, c.r.between(1, 4))
	if c.r.chance(0.2) {
		c.add(s, []cartLine{{c.pickProduct(false), 1}}, c.cartID())
	}
}

func (c *shopper) cartID() string {
	c.checkout++
	return fmt.Sprintf("K%06d-%03d", 100000+c.n, c.checkout)
}

// abandon is a session that reaches checkout and leaves. An email reminder
// may bring the customer back for the same basket.
func (c *shopper) abandon(at int64) {
	cart := c.cart(at, false, false)
	s := c.startWeb(at, false)
	c.view(s, cart, c.r.between(0, 2))
	cartID := c.cartID()
	c.add(s, cart, cartID)
	c.signIn(s)
	props := c.checkoutProps(cart, cartID)
	c.track(s, kiln.CheckoutStarted, props)
	if c.recover != nil {
		return
	}
	if c.canEmail() && c.r.chance(0.5) {
		cp := &campaign{id: "flow-abandoned-checkout", name: "Abandoned Checkout Reminder", subject: "You left something in your basket", path: "/cart", appeal: 1.6}
		if clickAt, ok := c.email1(s.t+3*hour+int64(c.r.uniform(0, 60))*minute, cp); ok && c.r.chance(0.4) {
			c.recover, c.nextRecover = cart, clickAt+int64(c.r.uniform(1, 10)*float64(minute))
		}
	} else if c.r.chance(0.06) {
		c.recover, c.nextRecover = cart, s.t+days(c.r.uniform(1, 3))
	}
}

func (c *shopper) checkoutProps(cart []cartLine, cartID string) map[string]any {
	products, gross := c.lines(cart)
	return map[string]any{"checkout_id": cartID, "value": gross, "currency": ShopCurrency, "products": products}
}

func (c *shopper) lines(cart []cartLine) ([]any, float64) {
	products := make([]any, len(cart))
	gross := 0.0
	for i, l := range cart {
		pp := c.productProps(l.p, l.qty)
		delete(pp, "currency")
		pp["position"] = float64(i + 1)
		products[i] = pp
		gross += catalog[l.p].Price * float64(l.qty)
	}
	return products, round2(gross)
}

// order is a purchase: a web session ending in "Order Completed", or a
// sale at the York flagship's till.
func (c *shopper) order(at int64, kind sessionKind, cart []cartLine) {
	gift := kind != sessRefill && !c.trade && c.r.chance(giftShare(at))
	till := c.orderAtTill && kind == sessRegular
	if till {
		gift = false
	}
	if cart == nil {
		cart = c.cart(at, gift, kind == sessRefill)
	}
	c.orders++
	orderID := fmt.Sprintf("HG%06d-%02d", 100000+c.n, c.orders)
	code, pct := coupon(at)
	if c.trade {
		code, pct = "TRADE15", 0.15
	} else if kind == sessFirst && code == "" && c.r.chance(0.3) {
		code, pct = "WELCOME10", 0.10
	} else if code != "" && !c.r.chance(0.7) {
		code, pct = "", 0
	}
	products, gross := c.lines(cart)
	discount := round2(gross * pct)
	net := round2(gross - discount)
	tax := round2(net - net/(1+vatRate))
	shipping := 0.0
	switch {
	case till:
	case c.trade && net < 500:
		shipping = 14.95
	case !c.trade && net < 60:
		shipping = 4.95
	}
	props := map[string]any{
		"order_id": orderID, "affiliation": ShopName, "subtotal": net, "revenue": round2(net - tax),
		"tax": tax, "shipping": shipping, "discount": discount, "currency": ShopCurrency, "products": products,
	}
	if code != "" {
		props["coupon"] = code
	}
	billing := map[string]any{"city": ukPlaces[c.place].city, "postal_code": ukPlaces[c.place].district, "country": "GB"}
	if !till {
		props["billing_address"] = billing
		props["shipping_address"] = billing
	}
	wrap := 0.0
	if gift {
		props["gift"] = true
		props["gift_message"] = pick(c.r, giftMessages)
		if c.r.chance(0.6) {
			wrap = 3.5
			props["gift_wrap"] = true
		} else {
			props["gift_wrap"] = false
		}
		pl := ukPlaces[c.r.IntN(len(ukPlaces))]
		if pl.district == ukPlaces[c.place].district {
			pl = ukPlaces[(c.place+1)%len(ukPlaces)]
		}
		props["shipping_address"] = map[string]any{
			"name": pick(c.r, ukFirst) + " " + pick(c.r, ukLast), "city": pl.city, "postal_code": pl.district, "country": "GB",
		}
	}
	if c.trade {
		props["customer_type"] = "business"
		props["company"] = c.company
		props["vat_id"] = c.vatID
	}
	props["total"] = round2(net + shipping + wrap)
	if kind == sessRefill {
		props["replenishment"] = true
	}

	var done int64
	if till {
		if !c.intro {
			c.identify(at, "", "") // the till looks the customer up in the CRM
		}
		props["affiliation"] = ShopName + " York"
		props["payment_method"] = pick(c.r, []string{"card", "card", "card", "contactless", "cash"})
		c.tl.push(at, kiln.Event{SourceID: SourcePOSFlagship, Type: kiln.Track, Name: kiln.OrderCompleted, Store: FlagshipStore,
			Properties: props, Context: ctxTraits("email", c.email)})
		done = at
	} else {
		s := c.startWeb(at, kind == sessRecover)
		cartID := c.cartID()
		if kind != sessRecover {
			c.view(s, cart, c.r.between(0, 2))
			c.add(s, cart, cartID)
		}
		c.signIn(s)
		c.track(s, kiln.CheckoutStarted, c.checkoutProps(cart, cartID))
		s.t += int64(c.r.uniform(1, 6) * float64(minute))
		props["checkout_id"] = cartID
		props["payment_method"] = pick(c.r, []string{"card", "card", "card", "paypal", "apple_pay"})
		c.track(s, kiln.OrderCompleted, props)
		done = s.t
	}

	// Now and then an order is returned: broken in transit, or not liked.
	if c.r.chance(0.035) {
		c.refund(done, orderID, cart, till)
	}
	if !c.trade && c.phone == "" && c.r.chance(0.03) && c.n/1000 < len(ukPhoneBlocks) {
		c.phone = fmt.Sprintf("%s%03d", ukPhoneBlocks[c.n/1000], c.n%1000)
		c.identify(done+minute, "", "")
	}
	if c.tea && c.nextRefill == never {
		for _, l := range cart {
			if catalog[l.p].Consumable {
				c.nextRefill = max(done, c.tl.now) + days(math.Max(20, 55+12*c.r.NormFloat64()))
				break
			}
		}
	}
	// BG/NBD: after each purchase the customer may drop out for good.
	if kind != sessRefill && kind != sessRecover && c.r.chance(c.pDrop) {
		c.alive = false
		c.nextRefill = never
	}
}

func (c *shopper) refund(after int64, orderID string, cart []cartLine, till bool) {
	at := clock(after+days(c.r.uniform(4, 30)), shopZone, c.r.uniform(9, 17), 0)
	lines := cart
	reason := "customer_return"
	if !till && c.r.chance(0.5) {
		reason = "damaged_in_transit"
	}
	if len(cart) > 1 && c.r.chance(0.6) {
		lines = cart[c.r.IntN(len(cart)):][:1]
	}
	products, gross := c.lines(lines)
	props := map[string]any{"order_id": orderID, "total": gross, "revenue": round2(gross / (1 + vatRate)), "currency": ShopCurrency,
		"products": products, "reason": reason}
	ev := kiln.Event{SourceID: SourceWebstore, Type: kiln.Track, Name: kiln.OrderRefunded, UserID: c.userID, Properties: props}
	if till {
		ev.SourceID, ev.UserID, ev.Store, ev.Context = SourcePOSFlagship, "", FlagshipStore, ctxTraits("email", c.email)
	}
	c.tl.push(at, ev)
}

// pickProduct picks a product the customer might look at or buy: often
// from their favourite pattern.
func (c *shopper) pickProduct(gift bool) int {
	cat := Categories[c.r.weighted(c.catW)]
	if gift && c.r.chance(0.6) {
		cat = GiftSets
	}
	if c.r.chance(0.65) {
		if ps := c.w.shop.byPatternCat[patterns[c.fav].name+"|"+cat]; len(ps) > 0 {
			return pick(c.r, ps)
		}
	}
	return pick(c.r, c.w.shop.byCategory[cat])
}

// cart fills a basket to around a value drawn from the customer's order
// value distribution; business buyers order pieces by the dozen.
func (c *shopper) cart(at int64, gift, refill bool) []cartLine {
	x := c.w.shop
	if refill {
		cart := []cartLine{{pick(c.r, x.teas), c.r.between(1, 3)}}
		if c.r.chance(0.3) {
			cart = append(cart, cartLine{c.pickProduct(false), 1})
		}
		return cart
	}
	if c.trade {
		cart := make([]cartLine, 0, 3)
		for i := c.r.between(1, 3); i > 0; i-- {
			p := pick(c.r, x.tradeProducts)
			if c.r.chance(0.5) {
				if ps := x.byPatternCat[patterns[c.fav].name+"|"+Dinnerware]; len(ps) > 0 {
					p = pick(c.r, ps)
				}
			}
			if slices.ContainsFunc(cart, func(l cartLine) bool { return l.p == p }) {
				continue
			}
			// By the dozen, mostly a few dozen: 12 to 120.
			cart = append(cart, cartLine{p, 12 * []int{1, 2, 3, 4, 5, 6, 8, 10}[c.r.weighted(tradeDozens)]})
		}
		return cart
	}
	target := math.Exp(c.spendMu + 0.35*c.r.NormFloat64())
	if gift {
		target *= 1.3
	}
	target *= 0.85 + 0.15*shopSeason(at) // seasonal baskets are bigger
	var cart []cartLine
	total := 0.0
	for len(cart) < 7 && (len(cart) == 0 || total < target*0.85) {
		p := c.pickProduct(gift)
		pr := &catalog[p]
		qty := 1
		if x.set[p] {
			qty = pick(c.r, []int{1, 2, 2, 4, 4, 6})
			for qty > 1 && total+pr.Price*float64(qty) > target*1.3 {
				qty /= 2
			}
		}
		if len(cart) > 0 && total+pr.Price*float64(qty) > target*1.6 {
			break
		}
		cart = appendLine(cart, p, qty)
		total += pr.Price * float64(qty)
	}
	if c.tea && c.r.chance(0.35) {
		cart = appendLine(cart, pick(c.r, x.teas), 1)
	}
	return cart
}

var tradeDozens = []float64{0.3, 0.25, 0.15, 0.1, 0.06, 0.05, 0.04, 0.05}

func appendLine(cart []cartLine, p, qty int) []cartLine {
	for i := range cart {
		if cart[i].p == p {
			cart[i].qty += qty
			return cart
		}
	}
	return append(cart, cartLine{p, qty})
}

func (c *shopper) canEmail() bool { return c.intro && c.consent && !c.unsub && !c.bounced }

// newsletter is one campaign send to the customer: maybe opened, maybe
// clicked (leading to a visit), rarely unsubscribed from.
func (c *shopper) newsletter(at int64, cp *campaign) {
	if at < c.created || !c.consent || c.unsub {
		return
	}
	if c.bounced {
		if c.intro {
			c.emailEvent(at+int64(c.r.uniform(1, 30)*1000), kiln.EmailBounced, cp, map[string]any{
				"sendgrid_event": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist"})
			c.consent = false
		}
		return
	}
	if !c.intro {
		c.identify(at, "", "")
	}
	clickAt, ok := c.email1(at+int64(c.r.uniform(0, 20))*minute, cp)
	if ok && c.r.chance(0.6) {
		c.browse(clickAt+int64(c.r.uniform(5, 60)*1000), cp)
	}
}

// email1 sends one email: the open (if any) comes minutes to days after the
// send. It reports when the customer clicked, if they did.
func (c *shopper) email1(at int64, cp *campaign) (int64, bool) {
	p := c.openP * cp.appeal
	if !c.alive {
		p *= 0.4
	}
	if !c.r.chance(p) {
		return 0, false
	}
	openAt := at + int64(math.Min(c.r.logNormal(math.Log(180), 1.3), 7*24*60)*float64(minute))
	c.emailEvent(openAt, kiln.EmailOpened, cp, nil)
	if c.r.chance(0.006) {
		reason := "unsubscribe"
		if c.r.chance(0.15) {
			reason = "spamreport"
		}
		c.emailEvent(openAt+int64(c.r.uniform(20, 120)*1000), kiln.Unsubscribed, cp, map[string]any{"channel": "email", "reason": reason})
		c.unsub = true
		return 0, false
	}
	if !c.r.chance(c.clickP * cp.appeal) {
		return 0, false
	}
	clickAt := openAt + int64(c.r.uniform(5, 120)*1000)
	c.emailEvent(clickAt, kiln.EmailLinkClicked, cp, map[string]any{"url": shopDomain + cp.path})
	return clickAt, true
}

func (c *shopper) emailEvent(at int64, name string, cp *campaign, extra map[string]any) {
	c.tl.push(at, emailEvent(c.email, ShopName, name, cp, extra))
}

// emailEvent is an email provider's event as Kiln's SendGrid webhook maps
// it: the address in properties.email, the campaign, and for clicks the url.
func emailEvent(email, brand, name string, cp *campaign, extra map[string]any) kiln.Event {
	props := map[string]any{"email": email, "campaign_id": cp.id, "campaign_name": cp.name, "email_subject": cp.subject, "brand": brand}
	for k, v := range extra {
		props[k] = v
	}
	return kiln.Event{SourceID: SourceEmail, Type: kiln.Track, Name: name, Properties: props}
}

// visitor is someone who browses the shop and never signs up: their events
// carry only an anonymous id.
type visitor struct {
	tl     timeline
	w      *world
	r      rng
	dev    string
	left   int
	helper *shopper // borrowed helpers (product picking); never emits as a customer
}

func newVisitor(w *world, n int) *visitor {
	r := newRNG(w.seed, streamVisitor, n)
	v := &visitor{w: w, r: r, dev: r.uuid(), left: r.between(1, 3)}
	v.tl = timeline{end: w.end, kind: kindVisitor}
	v.helper = &shopper{w: w, r: r, catW: []float64{0.36, 0.26, 0.14, 0.12, 0.07, 0.05}, fav: r.IntN(len(patterns))}
	v.tl.next = w.start + int64(r.Float64()*float64(w.end-w.start))
	return v
}

func (v *visitor) timeline() *timeline { return &v.tl }

func (v *visitor) step() {
	at := v.tl.next
	s := &web{dev: v.dev, t: at}
	for i := v.r.between(1, 4); i > 0; i-- {
		props := v.helper.productProps(v.helper.pickProduct(false), 1)
		delete(props, "quantity")
		v.tl.push(s.t, kiln.Event{SourceID: SourceWebstore, Type: kiln.Track, Name: kiln.ProductViewed, AnonymousID: v.dev, Properties: props})
		s.t += int64(v.r.uniform(15, 120) * 1000)
	}
	v.left--
	v.tl.next = never
	if v.left > 0 {
		v.tl.next = s.t + days(v.r.exp(30))
	}
}
