// Package rule is Kiln's definition language for computed traits and
// segments: parsing (text and JSON), checking with line:column errors,
// and canonical formatting. It does no I/O; package eval compiles and
// evaluates checked sets.
//
// # Text form
//
// A file is a list of definitions; # and // start comments. Definitions
// may come in any order: a set is checked as a whole, so traits may refer
// to traits and segments to segments (cycles are errors).
//
//	trait spend_365d "Spend (365 days)" = sum(properties.revenue) of "Order Completed" in last 365 days
//	trait orders_365d = count of "Order Completed" in last 365 days
//	trait teaware_units = sum(products.quantity) of "Order Completed" where products.category = "teaware" all time
//	trait aov_365d = spend_365d / orders_365d
//
//	segment high_value "High-value customers" {
//	  spend_365d >= 500 and count of "Order Completed" in last 365 days >= 3
//	}
//	  description "Spent 500+ over the last year"
//	  freshness every 15 minutes
//	  backfill new
//
//	segment cart_abandoners { "Checkout Started" not followed by "Order Completed" for at least 4 hours in last 7 days }
//	trait last_order_at = last time of "Order Completed"
//	segment lapsed { last_order_at more than 90 days ago }
//	segment birthday_week { anniversary of traits.birthday within next 7 days }
//	segment press static
//
// Definitions:
//
//	trait NAME ["Title"] = VALUE OPTIONS
//	segment NAME ["Title"] { CONDITION } OPTIONS
//	segment NAME ["Title"] static OPTIONS     members listed by CSV/API
//
// Options (any order, each optional): title "...", description "...",
// freshness realtime | every N minutes|hours|days | cron "0 6 * * *" [tz
// "Europe/London"] | manual, backfill all | new | none. They are validated
// here (cron with robfig/cron's standard parser, tz with the IANA
// database); the engine acts on them.
//
// Values (traits, and the left side of comparisons):
//
//	FUNC[(PATH [in CUR])] of "Event" [SCOPE] [where FILTER] WINDOW     an aggregate
//	NAME                                              another computed trait
//	number, + - * / and parentheses                   arithmetic (null if any operand is null, or on division by zero)
//
//	last time of "Event" [SCOPE] [where FILTER] [WINDOW]     the time of the latest event (first time of: the earliest)
//
// FUNC is count, sum, avg, min, max, first, last or distinct (also
// distinct_count). count needs no PATH (it counts events); count(PATH)
// counts the values present. sum/avg/min/max read numbers and skip other
// values; first/last return the value of the earliest/latest event
// (ties in time: arrival order); distinct counts distinct values by a
// 64-bit hash.
//
// PATH is properties.NAME[.NAME...] (the event's properties) or
// ARRAY.FIELD for line items: products.quantity reads quantity of every
// element of properties.products. When the value or the filter reads
// items, the filter is applied item by item: sum(products.quantity) where
// products.category = "teaware" adds the teaware lines' quantities, and
// count where products.category = "teaware" counts orders having at least
// one teaware line. One aggregate reads at most one array.
//
// WINDOW is required: in last N minutes|hours|days (rolling: the window
// is (now-N, now], so an event at t counts until exactly t+N), all time,
// today, this week (from Monday), this month, this year (calendar
// periods in the evaluator's time zone, [period start, now]), or between
// "YYYY-MM-DD" and "YYYY-MM-DD" (both days included, in the evaluator's
// time zone). Events later than now do not count until their time comes.
// Rolling windows are at most 3660 days.
//
// Scope: after the event name, an aggregate, performed, did not perform
// and both events of not followed by may limit the events they read, in
// any order (each at most once; [a list] allows any of its values):
//
//	from source "webstore"                  the Kiln source the event came in through (its sourceId)
//	at store "glendale"                     the event's store or location (Event.Store; "at location" reads the same)
//	in currency GBP                         properties.currency, or the default currency when the event has none
//
//	trait york_orders = count of "Order Completed" from source "pos-flagship" at store "york" in last 90 days
//	trait gbp_spend = sum(properties.revenue) of "Order Completed" in currency GBP in last 365 days
//	segment glendale_regulars { count of "Visit Completed" at store ["glendale", "pasadena"] in last 90 days >= 4 }
//	segment web_abandoners { "Checkout Started" from source "webstore" not followed by "Order Completed" within 4 hours in last 7 days }
//
// Money: sum, avg, min, max, first and last of an amount are money, in
// one currency, and shown with it and its decimals ("500.00 GBP").
// Amounts are the fields Segment's e-commerce spec names (revenue,
// total, subtotal, value, price, tax, shipping, discount) and tip,
// spend and amount, wherever they are (properties.revenue,
// products.price). An aggregate never adds amounts in two currencies:
//
//	sum(properties.revenue) of "Order Completed" ...                       the default currency's orders (kiln serve -currency, USD unless set)
//	sum(properties.revenue) of "Order Completed" in currency GBP ...       the GBP orders
//	sum(properties.revenue in GBP) of "Order Completed" ...                every order, converted into GBP at the fixed rates (kiln serve -rates "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP")
//
// Without a conversion an aggregate reads only amounts in its currency
// (the one in currency names, else the default); applying it is an
// error when the events already received hold amounts of that event in
// another currency, so a mix is never silently left out, and in
// currency [GBP, USD] on an amount is an error at once. A conversion
// multiplies each amount by the rate of its currency into the target and
// rounds it half-even to the target's decimals (19.99 USD at 0.79 is
// 15.79 GBP); an amount in a currency without a rate is left out, and
// applying is an error while such amounts exist. Any field converts
// (sum(properties.order_value in GBP)), which also makes it money. In
// arithmetic, amounts added or subtracted must share a currency
// (a constant is in the amount's currency); a sum divided by a count is
// money in that currency, a ratio of two amounts a plain number.
//
// Filters: PATH OP VALUE combined with and, or, not and parentheses. OP
// is = != < <= > >= contains in [v1, v2] exists, not exists. Values are
// quoted strings, numbers, true, false. length(PATH) OP NUMBER,
// conditions on the event's own line items (sum(products.quantity) >=
// 24, any(...), all(...)) and comparisons of two expressions
// (properties.shipping_address.name != traits.first_name + " " +
// traits.last_name) are filters too: see the sections below.
//
// Conditions combine with and, or, not, parentheses:
//
//	VALUE OP literal                                   spend_365d >= 500, last_city = "Leeds", count of "X" in last 7 days = 0
//	traits.NAME OP literal                             traits.country in ["GB", "UK"], traits.vip = true, traits.phone exists
//	EXPR OP EXPR                                       two values: spend_365d > traits.credit_limit (see Expressions)
//	in segment NAME                                    any segment, static ones included
//	performed "Event" [SCOPE] [where FILTER] WINDOW            count >= 1
//	did not perform "Event" [SCOPE] [where FILTER] WINDOW      count = 0
//	"A" [SCOPE] [where F] not followed by "B" [SCOPE] [where F] within SPAN in last N days
//	"A" ... not followed by "B" ... [for at least SPAN] in last N days     no B at or after A, up to now
//	DATE more than SPAN ago, DATE within last SPAN     DATE: last time of "X", or a trait holding it
//	anniversary of traits.NAME within next N days      month-day anniversaries: birthdays
//	traits.NAME within next N days                     the same (canonical text spells "anniversary of")
//	traits.NAME more than SPAN ago                     signed up more than 30 days ago
//	traits.NAME within last SPAN
//	rank of TRAIT [among SEGMENT] OP N             population-relative: see below (also percentile of, quartile of, ...)
//	TRAIT in top P% [among SEGMENT]                and in bottom P%
//
// Numbers are exact decimals, as written: 0.10 + 0.20 + 0.20 is 0.5,
// orders of 386.93 and 113.07 make spend >= 500 hold, and the average of
// 100.00 and 140.00 is exactly 120 (averages and divisions compare
// exactly, as a fraction). Values are shown as users write them
// (386.93, never 386.93000000000006); an average that does not end is
// shown rounded half-even to two more decimals than its sum has (16.67).
// A number beyond the exact range (a coefficient of 64 bits with up to
// 18 decimals) is "overflow" and compares as false.
//
// Comparisons with a missing value are false, except != and not exists
// (a profile without a country is != "UK"). Values of different types
// are unequal and unordered.
//
// # Sequences and the time of an event
//
// "A" not followed by "B" comes in two forms, both over a rolling window
// (in last N minutes|hours|days) that A must fall in:
//
//	# a deadline: some checkout with no order in the 4 hours after it
//	segment slow_checkout { "Checkout Started" not followed by "Order Completed" within 4 hours in last 7 days }
//	# open-ended: a checkout in the last 48 hours with no order since, up to now
//	segment open_checkout { "Checkout Started" not followed by "Order Completed" in last 48 hours }
//	# open-ended, and standing for at least 4 hours
//	segment cart_abandoners { "Checkout Started" not followed by "Order Completed" for at least 4 hours in last 7 days }
//
// within T: true when some A at a in the window has a+T <= now and no B
// in [a, a+T); it becomes true at exactly a+T and a B after a+T does not
// undo it. Open-ended: true when some A at a in the window (and, with
// for at least G, a+G <= now) has no B in [a, now]; it is true from a
// (or a+G), false as soon as a B at or after a arrives, whenever that
// is, and false at a+N when the last such A leaves the window. The tie
// rule, in both forms: a B at the same millisecond as A follows it (an
// order in the checkout's millisecond completes it); a B a millisecond
// before A does not. Events are placed by their own timestamps, so a
// late order placed after the checkout completes it when it arrives. A
// for at least span must be shorter than the window.
//
// The time of an event is a value: last time of "Event" (the latest
// matching event's time) and first time of "Event" (the earliest), with
// scope, where and window as any aggregate (the window may be left out:
// all time). Its type is date; its value is the instant in RFC 3339, UTC,
// to the millisecond ("2026-03-10T09:00:00.000Z"), and none (null) when
// no event matches. It is compared with a span back from now, exactly as
// a date trait is, or tested with exists / not exists; other comparisons
// and arithmetic on it are type errors:
//
//	trait last_order_at "Last order" = last time of "Order Completed"
//	trait first_visit_at = first time of "Page Viewed" from source "webstore" in last 30 days
//	segment recent_buyers { last_order_at within last 7 days }                            now-7d < t <= now
//	segment lapsed { last_order_at more than 90 days ago }                                t+90d <= now
//	segment quiet { last time of "Order Completed" more than 30 days ago }                inline, all time
//	segment never_ordered { last_order_at not exists }
//	segment lapsed_web { last time of "Order Completed" from source "webstore" in last 365 days more than 60 days ago }
//
// more than D ago holds from exactly t+D on; within last D holds until
// t+D exclusive; both are false for a profile without such an event.
// The engine schedules those instants, so a member enters or leaves at
// the millisecond. The same conditions read first(PATH)/last(PATH) of a
// property holding dates ("YYYY-MM-DD" or RFC 3339).
//
// In the JSON form: {"func": "last_time"} (or "first_time") is the
// aggregate, without a property; "ago" and "within_last" conditions take
// the value in "left" instead of "profileTrait"; an open-ended sequence
// has no "within", and for at least is "for": {"n": 4, "unit": "hours"}.
//
// # Population-relative conditions
//
// A condition may compare a profile with the other profiles: its standing
// by a numeric computed trait among a population, everyone the engine
// knows with a numeric value of the trait or, with among NAME, those of
// them in segment NAME:
//
//	segment top_spenders { spend_365d in top 20% among buyers_365d }          fewer than 20% of buyers spent more
//	segment bottom_tenth { spend_365d in bottom 10% among buyers_365d }       fewer than 10% spent less
//	segment top_100 { rank of spend_365d <= 100 }                             rank 1 is the highest value
//	segment above_median_visits { percentile of visits_90d among guests_90d >= 50 }
//	segment champions { quintile of spend_365d among buyers_365d = 5 and quintile of orders_365d among buyers_365d >= 4 }
//	segment middle { quartile of spend_365d = 2 or quartile of spend_365d = 3 }
//	segment not_first { rank of spend_365d != 1 }
//
// Tie rules. N is the size of the population; less and greater count its
// members with a strictly smaller and a strictly greater value:
//
//   - rank of T is 1 + greater: ties share the best rank (values 30, 20,
//     20, 10 rank 1, 2, 2, 4);
//   - percentile of T is 100 × less / N, the share strictly below (10,
//     20, 20, 30 are at 0, 25, 25 and 75);
//   - quartile of T is floor(4 × less / N) + 1, from 1 to 4 (quintile: 5,
//     decile: 10, likewise): the highest values score 4 (10, 20, 20, 30
//     score 1, 2, 2, 4);
//   - T in top P% holds when 100 × greater < P × N: fewer than P% of the
//     population is strictly above (in top 50% of 10, 20, 20, 30: the
//     20s and 30);
//   - T in bottom P% holds when 100 × less < P × N.
//
// Ties always share a rank, a percentile and a score, so "top 20%" may
// hold more than 20% of the population when values tie at the line (all
// of them are in). The arithmetic is exact (integers; a value is compared
// as the exact decimal or fraction it is). A profile outside the
// population (no value of T, a value that is not a number, or not in the
// among segment) satisfies no ranking, whatever the comparison, != and in
// top 100% included (not rank of T = 1 holds for it). A profile in the
// population counts itself, so N >= 1 for every ranking that is decided;
// with N = 0 nobody is in the population and no ranking holds. Counts and
// sums of no events are 0, not missing: every profile the engine knows
// is ranked by them, at 0 (use among to rank only, say, the buyers).
//
// Rankings are kept current in real time, like every other condition:
// when one profile's value or population membership changes (an event, a
// window expiry, a merge, a deletion), the profiles whose standing crossed
// a threshold are re-evaluated at the same instant (transitions with
// reason rank), with exact expiry; "who was in it at T" (as of a past
// instant) ranks every profile as it was then. Explain, and the evidence
// of a transition, shows the profile's value, its rank of N with how
// many are below and above, its percentile (and score), and the values
// that satisfy the condition at that instant ("value 300.00 GBP; rank 2
// of 5 (3 below, 1 above), percentile 60; it holds now from 500.00 GBP
// to 500.00 GBP"). T must be a computed trait (a number);
// among names a segment that does not itself use a ranking, directly or
// through in segment (a population must not depend on ranks). Comparisons
// are =, !=, <, <=, > and >= with a whole number from 1 for rank, from 1
// to k for the quantiles, and 0 to 100 (at most 4 decimals) for
// percentile; top and bottom take a percentage above 0 and at most 100.
//
// In the JSON form: {"op": "rank", "rank": {"func": "percentile", "trait":
// "visits_90d", "among": "guests_90d"}, "cmp": ">=", "value": 50}; func is
// rank, percentile, quartile, quintile, decile, top or bottom (top and
// bottom have no cmp: value is the percentage).
//
// # Paths, objects and lists
//
// A path reads into nested objects, in event properties and in profile
// traits alike; a key that is not a plain name is quoted:
//
//	last(properties.shipping_address.name) of "Order Completed" all time
//	sum(properties.meta."unit price") of "Order Completed" in last 30 days
//	traits.company.name = "Teahouse Ltd"
//	traits."VAT id" exists
//	traits.account.created_at more than 30 days ago
//
// An object or a list is a value that exists (traits.company exists holds
// for a profile whose company is an object) but equals nothing; count
// and distinct count objects and lists by content, other aggregates skip
// them. A path through something that is not an object reads nothing
// (traits.company.name is missing when company is a string).
//
// Profile traits merge by top-level key, last write wins: an identify
// with {"company": {"size": 12}} replaces the whole company object, as
// the tracking API's identify does. Nested traits keep their structure
// through the engine's snapshots.
//
// Lists: contains tests membership, length counts.
//
//	properties.tags contains "gift"          the list holds "gift" (for a string: a substring)
//	traits.tags contains "vip"
//	length(properties.products) >= 3         a list's elements, an object's keys, a string's characters
//	length(traits.tags) >= 2                 (null when missing: length(...) = 0 needs an empty list)
//
// In the JSON form a path is one string as written here
// ("traits.company.name" is {"op": "profile", "name": "company.name"}).
// length(...) and contains work in filters and on profile traits. A
// Schema may declare a trait as TObject or TList: then traits.NAME.FIELD
// and contains/length are checked against it.
//
// # Conditions on an event's own line items
//
// An event filter can aggregate the event's own line items (a list of
// objects in the event's properties, written by its name: products for
// properties.products, as in products.quantity): the event matches when the
// aggregate over its items satisfies the comparison. So it composes
// with every window and count: the filter decides per event, when the
// event arrives, and windows count the matching events as they do any
// other filter (incrementally, with exact expiry).
//
//	sum(products.quantity) >= 24                           units add up to 24 or more
//	sum(products.price where products.category = "Teaware") >= 100
//	count(products) >= 3                                   three or more lines
//	count(products where products.price >= 100) >= 2       two lines of 100 or more
//	distinct(products.category) >= 3                       three categories in one order
//	avg(products.price) > 20                               the average line price
//	min(products.quantity) >= 2                            every line of two or more
//	max(products.price) < 5                                no line of 5 or more
//	any(products.category = "Teaware")                     some line is teaware
//	all(products.category = "Teaware")                     an order of teaware only
//
// FUNC(ARRAY.FIELD [where FILTER]) OP NUMBER: the where filter picks the
// items (it reads the same array, and may read the event's properties);
// sum, avg, min and max read numbers and skip other values; count(ARRAY)
// counts items, count(ARRAY.FIELD) items with a value there; distinct
// counts distinct values. sum and count of no items are 0; avg, min and
// max of none are missing (so only != and not exists hold). any(FILTER)
// needs one item passing; all(FILTER) needs at least one item and every
// item passing (an order with no lines is not "all teaware"). Elements
// that are not objects are skipped.
//
// Examples:
//
//	# an order whose units add up to at least 24
//	segment trade_size_buyer { performed "Order Completed" where sum(products.quantity) >= 24 in last 365 days }
//	# at least 2 orders in the last year each with 24+ units
//	segment repeat_trade { count of "Order Completed" where sum(products.quantity) >= 24 in last 365 days >= 2 }
//	# an order that contains both teaware and a gift set
//	segment teaware_gifts { performed "Order Completed" where any(products.category = "Teaware") and any(products.category = "Gift Sets") all time }
//	# computed traits use them like any filter
//	trait trade_orders_365d = count of "Order Completed" where sum(products.quantity) >= 24 in last 365 days
//	trait trade_units_365d = sum(products.quantity) of "Order Completed" where sum(products.quantity) >= 24 in last 365 days
//
// Unlike a plain item filter (where products.category = "teaware", which
// is applied item by item: the same item must pass all of it), each
// line-item condition looks at all the items on its own, so two any(...)
// may be met by different lines. A line-item condition reads one array.
//
// # Expressions
//
// Both sides of a comparison may be expressions: in a segment condition
// they read computed traits, aggregates, profile traits and constants; in
// an event filter (where ...) they read the event's properties, its line
// item (products.price) and the profile's traits. Computed traits are
// numbers over events: they read no profile traits and no functions.
//
//   - properties.NAME, products.FIELD: the event's values (filters only)
//   - traits.NAME: the profile's
//   - NAME, FUNC(...) of "Event" ... WINDOW: computed traits and aggregates (conditions only)
//   - "text", 12.5, true, false: constants
//   - a + b, a - b, a * b, a / b: arithmetic on numbers, exact; + of two strings joins them
//   - lower(s), upper(s), trim(s): strings (trim removes white space at both ends)
//   - length(x): a string's characters, a list's elements, an object's keys
//   - year(d), month(d), day(d): date parts (month 1-12, day of the month 1-31)
//   - day_of_week(d): ISO, 1 Monday ... 7 Sunday
//   - days_between(a, b): calendar days from date a to date b (negative if b is earlier)
//
// Dates are "YYYY-MM-DD" (midnight in the evaluator's time zone) or RFC
// 3339 strings; their parts and days_between are read in the evaluator's
// time zone. A missing value, or one of the wrong type, makes a function
// or an operator null (so does x / 0), and a comparison of two values is
// false when either side is null, whatever the operator, != included:
// nothing is known about a missing name. A comparison with a literal
// keeps the rules above (a missing value is != "UK"). Types are checked
// when definitions are applied, with the line and column of the
// offending operand (wrong type: lower needs a string, traits.birthday
// is a date); event properties are untyped until they are read.
//
// An event filter that reads profile traits reads them as they are when
// the event arrives (after the traits the event itself carries): the
// event's match is decided then and kept, as line-item conditions are, so
// it stays exact and incremental. A later change of the profile does not
// change which past events matched; it matters for events after it. This
// is the SQL of an event log joined with the profile as of each event.
// Replays (a definition edit, Naive, as-of questions) give each event the
// traits of the events before it in log order.
//
// Examples:
//
//	# an order shipped to a name other than the customer's own
//	segment gift_buyer { performed "Order Completed" where properties.shipping_address.name != traits.first_name + " " + traits.last_name in last 365 days }
//	# the same, ignoring case and stray spaces
//	trait gift_orders = count of "Order Completed" where lower(trim(properties.shipping_address.name)) != lower(traits.first_name + " " + traits.last_name) all time
//	# two event properties
//	trait discounted_orders = count of "Order Completed" where properties.discount * 4 >= properties.revenue in last 90 days
//	# a line item against the event
//	trait lines_over_half = count of "Order Completed" where any(products.price * products.quantity > properties.revenue / 2) all time
//	# a date part of the event against the profile
//	trait birthday_month_orders = count of "Order Completed" where month(properties.ordered_on) = month(traits.birthday) all time
//	# days between two dates of the event
//	trait slow_deliveries = count of "Order Delivered" where days_between(properties.ordered_on, properties.delivered_on) > 5 in last 90 days
//	# conditions: profile traits with functions, computed traits against each other
//	segment december_birthdays { month(traits.birthday) = 12 }
//	segment weekend_born { day_of_week(traits.birthday) >= 6 }
//	segment named { length(trim(traits.first_name)) > 0 and upper(traits.customer_type) = "TRADE" }
//	segment joined_in_2024 { year(traits.created_at) = 2024 }
//	segment big_last_order { last(properties.revenue) of "Order Completed" all time >= avg(properties.revenue) of "Order Completed" in last 365 days * 2 }
//
// In the JSON form an expression comparison in a filter is {"op":
// "compare", "left": EXPR, "cmp": "!=", "right": EXPR}, in a condition
// {"op": "cmp", "left": EXPR, "cmp": ..., "right": EXPR}; expressions add
// {"op": "property", "name": "properties.a.b"}, {"op": "string", "str":
// "..."}, {"op": "bool", "bool": true} and {"op": "call", "func":
// "lower", "args": [EXPR]}.
//
// # JSON form
//
// The syntax tree (Set, Def, Expr, Agg, Window, Filter, Cond) is the JSON
// form, for the API and a form builder. Format(ParseJSON(json(Parse(t))))
// equals Format(Parse(t)). Unknown JSON fields are rejected. Def.Version
// is the resource version the engine assigns; it is not in the text form.
//
// # Errors
//
// Parse reports the first syntax error; Check reports every semantic
// error (unknown trait or segment, wrong type, bad window or span, bad
// option, cycles, mixing two item arrays), in source order, as an
// ErrorList of "line:col: message" that unwraps to a kiln.Error with code
// EInvalid. Definitions from JSON have no positions; their errors start
// with the definition ("segment vip: unknown trait ghost"). A set that
// passes Check never fails at evaluation time.
//
// Definitions nest at most MaxDepth (200) levels: parentheses and not in
// the text form, operands of and, or, not and arithmetic in the tree.
// Deeper ones are an error at the first level too deep ("1:213: definition
// nested too deeply: more than 200 levels ..."); JSON nested deeper than
// any definition within the limit is rejected with its line and column
// in the JSON before it is decoded (CheckJSONDepth). Every recursive walk
// over a definition relies on the bound.
//
// Check takes an optional Schema of profile traits: with one, unknown
// traits.NAME are errors and comparisons are type-checked (date traits
// accept "YYYY-MM-DD" or RFC 3339 literals).
//
// # Library
//
// Package rule/library ships ready definition files for a chinaware shop
// and a restaurant group.
package rule
