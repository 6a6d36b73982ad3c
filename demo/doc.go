// Package demo generates realistic, deterministic demo data for Kiln: the
// canonical events (kiln.Event, Segment form) of two made-up businesses.
//
// # The businesses
//
// Hearth & Glaze is a UK Home & Kitchen shop selling chinaware in GBP: a
// catalog of a few hundred SKUs (see Catalog) in patterns such as "Ararat
// Blue" across dinnerware, teaware, glassware, serveware, cutlery and gift
// sets, a webstore ("webstore") and a flagship shop in York
// ("pos-flagship"), and newsletters ("email"). Its customers sign up after
// browsing anonymously, buy at a personal rate drawn from a gamma
// distribution and drop out after a purchase with a personal probability
// (the BG/NBD story), spend around a personal log-normal order value, buy
// more in November and December (and gift then), abandon checkouts, open
// and click emails and sometimes unsubscribe. A few are business buyers
// (cafés, hotels) ordering 12 to 120 of a piece; tea drinkers come back
// for loose-leaf tea every couple of months; some orders are refunded.
//
// Lavash & Vine is an Armenian restaurant group in Los Angeles County with
// three locations (Glendale, Pasadena, Downtown LA; sources "pos-glendale",
// "pos-pasadena", "pos-downtown-la", and "restaurant-web" for online orders
// and RSVPs), in USD. Guests have a home location and a personal visit
// rhythm (weekly regulars, monthly, occasional), may lapse, join the
// loyalty programme, order from a menu with seasonal specials (see Menu:
// ghapama only in autumn, harissa in winter, ...), order takeaway online,
// RSVP to wine nights, Vardavar and New Year's Eve, leave ratings that
// drift per guest, and reach loyalty milestones.
//
// # Events
//
// Generate streams the events in timestamp order (ties in a fixed order)
// through a callback. Each customer is a small state machine whose next
// activity is built only when it is due, so memory stays at a few
// megabytes whatever the number of events. The same Config gives the same events, byte for byte: each
// customer draws from its own random stream seeded from Config.Seed, and
// message ids are "demo-<seed>-<n>" in stream order. Timestamps are UTC;
// times of day follow the shop's UK clock (UTC, ignoring summer time) and
// the restaurants' Pacific Standard Time (UTC-8 all year), so a seasonal
// dish is judged by its UTC-8 date.
//
// Identifiers sit where Kiln's ingest looks for them: UserID and
// AnonymousID on web events, traits on identify calls, and
// context.traits.email / phone / loyalty_number on events from the POS, the
// email provider and the restaurant systems. Every event's Anchor is its
// strongest identifier. Emails use the reserved example.com, example.org
// and example.net domains; phone numbers are in ranges reserved for drama
// (UK) or the unassigned 555 exchange (US), so no real person is named.
package demo
