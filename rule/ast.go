package rule

// The syntax tree is also the JSON form: every node is a plain struct with
// JSON tags, so the API and a UI form builder exchange exactly what the
// parser produces, and Format turns it back into text. Positions are not
// part of the JSON form (a definition built in a form has no lines).

// Pos is a 1-based line and column in the source text; zero when the node
// came from JSON.
type Pos struct {
	Line int `json:"-"`
	Col  int `json:"-"`
}

// Set is a whole definition set: it is checked and compiled as one, so
// traits may refer to traits and segments to segments in any order.
type Set struct {
	Defs []*Def `json:"definitions"`
}

// Def kinds.
const (
	KindTrait   = "trait"
	KindSegment = "segment"
)

// Def is one computed trait or segment definition.
type Def struct {
	Kind        string     `json:"kind"`
	Name        string     `json:"name"`
	Title       string     `json:"title,omitempty"`
	Description string     `json:"description,omitempty"`
	Freshness   *Freshness `json:"freshness,omitempty"`
	// Backfill says which profiles the engine acts on when the definition
	// is first applied or edited: "all" members, only "new" entries after
	// the backfill, or "none". Empty means the engine's default.
	Backfill string `json:"backfill,omitempty"`
	// Version is the resource version the engine assigned when the
	// definition was applied; it is not part of the text form.
	Version int64 `json:"version,omitempty"`
	// Value is a trait's definition.
	Value *Expr `json:"value,omitempty"`
	// Static segments list their members explicitly (CSV upload, API);
	// the evaluator is told the memberships.
	Static bool `json:"static,omitempty"`
	// Cond is a computed segment's condition.
	Cond *Cond `json:"condition,omitempty"`
	Pos
}

// Freshness modes.
const (
	FreshRealtime = "realtime"
	FreshEvery    = "every"
	FreshCron     = "cron"
	FreshManual   = "manual"
)

// Freshness says how current the engine keeps a definition.
type Freshness struct {
	Mode  string `json:"mode"`
	Every *Span  `json:"every,omitempty"` // FreshEvery
	Cron  string `json:"cron,omitempty"`  // FreshCron, 5-field spec
	TZ    string `json:"tz,omitempty"`    // FreshCron, IANA zone; empty = evaluator's
	Pos
}

// Span is a duration in whole minutes, hours or days ("4 hours").
type Span struct {
	N    int    `json:"n"`
	Unit string `json:"unit"` // "minutes", "hours" or "days"
	Pos
}

// Expr ops.
const (
	ExprAgg     = "aggregate" // Agg
	ExprTrait   = "trait"     // Name: another computed trait
	ExprProfile = "profile"   // Name: a profile trait (traits.NAME); conditions only
	ExprNum     = "number"    // Num
	ExprAdd     = "+"
	ExprSub     = "-"
	ExprMul     = "*"
	ExprDiv     = "/"
	// Expressions (see doc.go "expressions"): values of an event filter
	// or of a condition's two sides.
	ExprProp   = "property" // Name: an event property path (properties.a.b, products.x); event filters only
	ExprString = "string"   // Str
	ExprBool   = "bool"     // Bool
	ExprCall   = "call"     // Func applied to Args (FnLower, FnMonth, ...)
)

// Functions of expressions (ExprCall). Every function of a missing
// (null) or mistyped value is null.
const (
	FnLower       = "lower"        // lower(string)
	FnUpper       = "upper"        // upper(string)
	FnTrim        = "trim"         // trim(string): leading and trailing white space removed
	FnYear        = "year"         // year(date)
	FnMonth       = "month"        // month(date): 1..12
	FnDay         = "day"          // day(date): day of the month, 1..31
	FnDayOfWeek   = "day_of_week"  // day_of_week(date): ISO, 1 Monday .. 7 Sunday
	FnDaysBetween = "days_between" // days_between(date a, date b): calendar days from a to b
)

// ExprFuncs lists the functions of expressions and their arity; length
// (FnLength) takes one value too.
var ExprFuncs = map[string]int{
	FnLower: 1, FnUpper: 1, FnTrim: 1, FnLength: 1, FnYear: 1, FnMonth: 1, FnDay: 1, FnDayOfWeek: 1, FnDaysBetween: 2,
}

// Expr is a value: an aggregate over events, a reference to a computed
// or profile trait, an event property (in event filters), a constant, a
// function of values (ExprCall), or arithmetic over those (+ also joins
// strings).
//
// A profile trait's Name is a path (company.name, see SplitPath); Func
// "length" reads its length instead (length(traits.tags)).
type Expr struct {
	Op   string  `json:"op"`
	Agg  *Agg    `json:"aggregate,omitempty"`
	Name string  `json:"name,omitempty"`
	Func string  `json:"func,omitempty"` // ExprProfile: "" or FnLength
	Num  float64 `json:"num,omitempty"`
	Str  string  `json:"str,omitempty"`  // ExprString
	Bool bool    `json:"bool,omitempty"` // ExprBool
	Args []*Expr `json:"args,omitempty"` // arithmetic: exactly two; ExprCall: the function's
	Pos
}

// FnLength reads the length of a value instead of the value: the
// elements of a list, the keys of an object, the characters of a
// string; null for anything else and when it is missing.
const FnLength = "length"

// Aggregate functions.
const (
	FnCount    = "count"
	FnSum      = "sum"
	FnAvg      = "avg"
	FnMin      = "min"
	FnMax      = "max"
	FnFirst    = "first"
	FnLast     = "last"
	FnDistinct = "distinct"
	// FnFirstTime and FnLastTime are the instant of the earliest and
	// latest matching event (first time of "X", last time of "X"): a
	// date value, compared with more than SPAN ago and within last SPAN.
	FnFirstTime = "first_time"
	FnLastTime  = "last_time"
)

// Agg aggregates one property of the events named Event that pass Where,
// over Window. Path is empty only for count (count of events).
//
// Paths: "properties.a.b" reads the event's properties; "items.field"
// (any other first segment) reads field of every element of the array
// properties.items, e.g. "products.quantity". When the value path or the
// filter reads items, the filter is applied per item: sum(products.quantity)
// where products.category = "teaware" adds the quantities of the teaware
// lines only, and count where products.category = "teaware" counts the
// events having at least one teaware line.
type Agg struct {
	Func string `json:"func"`
	Path string `json:"property,omitempty"`
	// Convert is the currency an amount is converted into before it is
	// aggregated (sum(properties.revenue in GBP)), at the evaluator's
	// fixed rates; it also makes Path an amount.
	Convert string  `json:"convert,omitempty"`
	Event   string  `json:"event"`
	Scope   *Scope  `json:"scope,omitempty"`
	Where   *Filter `json:"where,omitempty"`
	Window  *Window `json:"window"`
	Pos
}

// Scope limits the events an aggregate or event reference reads to those
// that came in through one of Sources (kiln.Event.SourceID), at one of
// Stores (kiln.Event.Store: a shop or restaurant location) and in one of
// Currencies (properties.currency, or the evaluator's default currency
// when an event has none). An empty list does not limit.
type Scope struct {
	Sources    []string `json:"sources,omitempty"`
	Stores     []string `json:"stores,omitempty"`
	Currencies []string `json:"currencies,omitempty"`
	Pos
}

// Window kinds.
const (
	WinAll     = "all"     // all time
	WinLast    = "last"    // rolling: (now-N unit, now]
	WinToday   = "today"   // calendar periods in the evaluator's time zone
	WinWeek    = "week"    // ISO week, from Monday 00:00
	WinMonth   = "month"   //
	WinYear    = "year"    //
	WinBetween = "between" // fixed dates From..To inclusive, in the evaluator's time zone
)

// Window is the time range an aggregate covers, always ending at the
// evaluation instant (events later than now are not counted yet).
type Window struct {
	Kind string `json:"kind"`
	N    int    `json:"n,omitempty"`
	Unit string `json:"unit,omitempty"`
	From string `json:"from,omitempty"` // YYYY-MM-DD
	To   string `json:"to,omitempty"`   // YYYY-MM-DD
	Pos
}

// Filter ops.
const (
	FAnd = "and"
	FOr  = "or"
	FNot = "not"
	FCmp = "cmp"
	// FItems is a condition on an aggregate over the event's own line
	// items: Func over Path (the items whose Where holds) compared with
	// Value, e.g. sum(products.quantity) >= 24; or FnAny / FnAll of
	// Where over the items of array Path.
	FItems = "items"
	// FExpr compares two expressions (Left Cmp Right), or an expression
	// with a list (in, Value) or with nothing (exists, not exists), e.g.
	// properties.shipping_address.name != traits.first_name + " " +
	// traits.last_name. Profile traits are read as they are when the
	// event arrives (see doc.go "expressions").
	FExpr = "compare"
)

// Functions of per-event item conditions (FItems) besides count, sum,
// avg, min, max and distinct.
const (
	FnAny = "any" // some item passes Where
	FnAll = "all" // there are items and every one passes Where
)

// Comparison operators (filters and conditions).
const (
	CmpEq        = "="
	CmpNe        = "!="
	CmpLt        = "<"
	CmpLe        = "<="
	CmpGt        = ">"
	CmpGe        = ">="
	CmpContains  = "contains"
	CmpIn        = "in"
	CmpExists    = "exists"
	CmpNotExists = "not exists"
)

// Filter is a condition over one event's properties (and line items).
// In a comparison (FCmp), Func FnLength compares the length of Path's
// value. In an item condition (FItems), Func is the aggregate, Path the
// item value (products.quantity) or, for count, any and all, the array
// (products), and Where filters the items.
type Filter struct {
	Op    string    `json:"op"`
	Args  []*Filter `json:"args,omitempty"`
	Func  string    `json:"func,omitempty"`
	Path  string    `json:"property,omitempty"`
	Where *Filter   `json:"where,omitempty"`
	Cmp   string    `json:"cmp,omitempty"`
	Value any       `json:"value,omitempty"` // string, float64, bool or []any of those
	// FExpr: the two sides (Right nil for in, exists and not exists).
	Left  *Expr `json:"left,omitempty"`
	Right *Expr `json:"right,omitempty"`
	Pos
}

// Cond ops.
const (
	CAnd          = "and"
	COr           = "or"
	CNot          = "not"
	CCmp          = "cmp"           // Left Cmp Value, or Left Cmp Right
	CSegment      = "segment"       // in segment Segment
	CPerformed    = "performed"     // performed Event [where] window
	CNotPerformed = "not_performed" // did not perform Event [where] window
	CNotFollowed  = "not_followed"  // First not followed by Then [within Within | for at least For], in Window
	CAnniversary  = "anniversary"   // anniversary of traits.Name within next Within(days)
	CAgo          = "ago"           // traits.Name (or Left, a date value) more than Within ago
	CWithinLast   = "within_last"   // traits.Name (or Left, a date value) within last Within
	// CRank is a population-relative condition: the standing of one
	// profile's computed trait among the profiles of a population (see
	// doc.go "Population-relative conditions").
	CRank = "rank"
)

// Ranking functions (Rank.Func).
const (
	RankRank       = "rank"       // rank of T: 1 + members with a strictly greater value
	RankPercentile = "percentile" // percentile of T: 100 × members with a strictly smaller value / N
	RankTop        = "top"        // T in top P%: fewer than P% of the members have a strictly greater value
	RankBottom     = "bottom"     // T in bottom P%: fewer than P% of the members have a strictly smaller value
	RankQuartile   = "quartile"   // quartile of T: 1..4, from the percentile (4: the highest values)
	RankQuintile   = "quintile"   // quintile of T: 1..5
	RankDecile     = "decile"     // decile of T: 1..10
)

// RankTiles is the number of scores of each quantile function.
var RankTiles = map[string]int{RankQuartile: 4, RankQuintile: 5, RankDecile: 10}

// Rank is what a population-relative condition (CRank) ranks: the
// computed trait Trait among the profiles that have a numeric value of
// it and, when Among is set, are members of segment Among.
type Rank struct {
	Func  string `json:"func"`
	Trait string `json:"trait"`
	Among string `json:"among,omitempty"`
	Pos
}

// Cond is a segment condition.
type Cond struct {
	Op    string  `json:"op"`
	Args  []*Cond `json:"args,omitempty"`
	Left  *Expr   `json:"left,omitempty"`
	Cmp   string  `json:"cmp,omitempty"`
	Value any     `json:"value,omitempty"`
	// Right is the right side of a comparison of two values
	// (traits.home_location != traits.last_store); nil when it compares
	// with the literal Value.
	Right   *Expr  `json:"right,omitempty"`
	Segment string `json:"segment,omitempty"`
	// Agg is the event reference of performed / not performed (Func is
	// always count).
	Agg *Agg `json:"aggregate,omitempty"`
	// Profile names the profile trait of anniversary / ago / within_last
	// (a path: account.created_at). Ago and within_last read Left instead
	// when it is set: a date value (a computed trait or an aggregate such
	// as last time of "Order Completed").
	Profile string `json:"profileTrait,omitempty"`
	// First, Then, Within and Window describe "A not followed by B within
	// T in WINDOW"; Within is also the span of anniversary / ago /
	// within_last. Without Within the sequence is open-ended: no B at or
	// after A up to now ("A not followed by B in last 48 hours"), and For
	// is how long A must have stood unfollowed ("for at least 4 hours").
	First  *EventRef `json:"first,omitempty"`
	Then   *EventRef `json:"then,omitempty"`
	Within *Span     `json:"within,omitempty"`
	For    *Span     `json:"for,omitempty"`
	Window *Window   `json:"window,omitempty"`
	// Rank is the ranking of a population-relative condition (CRank),
	// compared by Cmp with Value (for top and bottom, Value is the
	// percentage and Cmp is empty).
	Rank *Rank `json:"rank,omitempty"`
	Pos
}

// EventRef is an event name with an optional filter.
type EventRef struct {
	Event string  `json:"event"`
	Scope *Scope  `json:"scope,omitempty"`
	Where *Filter `json:"where,omitempty"`
	Pos
}
