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
// for loose-leaf tea every couple of months; some orders are refunded. One
// customer in fifty shares the home computer with a partner, so a few
// anonymous ids are signed in to by two user ids.
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
// times of day, sales and seasons follow the shop's clock (Europe/London)
// and the restaurants' (America/Los_Angeles), so a seasonal dish is judged
// by its date in Los Angeles. The time zone rules are compiled in, so the
// host's zone database does not change the output.
//
// # Event catalogue
//
// The shop ("webstore" unless noted; amounts in GBP, prices include VAT):
//
//   - page (Home, a category): path, url, title.
//   - identify: userId (C1xxxxx), anonymousId on sign-in, traits email,
//     first_name, last_name, created_at, email_consent, address, phone and
//     birthday for some, customer_type, and company, vat_id, industry for
//     business buyers (who also send a group call).
//   - Signed Up: method (checkout, newsletter).
//   - Product Viewed, Product Added: product_id, sku, name, category,
//     pattern, price, currency, url / quantity and cart_id.
//   - Checkout Started: checkout_id, value, currency, products[].
//   - Order Completed: order_id, checkout_id, affiliation, subtotal (after
//     discount, with VAT), revenue (without VAT and shipping), tax, shipping,
//     discount, coupon, total, currency, payment_method, products[]
//     (product_id, sku, name, category, pattern, price, quantity,
//     position), billing_address, shipping_address; gift orders add gift,
//     gift_message, gift_wrap and a different shipping_address; business
//     orders add customer_type "business", company and vat_id; tea
//     re-orders add replenishment. Till sales come from "pos-flagship"
//     (Store "york") carrying the customer's email in context.traits.
//   - Order Refunded: order_id, total, revenue, currency, reason,
//     products[] (the refunded lines).
//
// Email ("email", shaped as Kiln's SendGrid webhook maps events): Email
// Opened, Email Link Clicked (url), Email Bounced (reason, status),
// Unsubscribed (channel, reason), each with email, campaign_id,
// campaign_name, email_subject and brand (the business).
//
// The restaurants (amounts in USD; Store is the location's):
//
//   - identify from a POS when a guest joins the loyalty programme (email,
//     phone, loyalty_number, loyalty_joined_at, first_name, last_name,
//     birthday, home_location, email_consent), or from "restaurant-web"
//     when they open an online account.
//   - Visit Completed (POS): visit_id, location, party_size, covers,
//     dishes[] (product_id, sku, name, category = course, price, quantity),
//     revenue (food and drink), tax, tip, spend (revenue and tax), currency,
//     daypart, reservation, table, occasion (birthday, or the event
//     attended). Identified by loyalty_number and/or phone.
//   - Order Completed ("restaurant-web"): takeaway or delivery with
//     order_id, location, fulfillment, party_size (people it feeds),
//     products[], revenue, tax, shipping, tip, total, currency.
//   - Event RSVP: event_id, event_name, event_date, location, party_size,
//     response (yes, maybe).
//   - Feedback Given: rating (1 to 5), visit_id, location, channel,
//     sometimes a comment.
//   - Loyalty Milestone Reached: milestone (5, 10, 25, 50, 100 visits as a
//     member), milestone_name, reward, loyalty_number, location.
//
// Numbers are float64, as they are after a JSON round trip.
//
// Identifiers sit where Kiln's ingest looks for them: UserID and
// AnonymousID on web events, traits on identify calls, and
// context.traits.email / phone / loyalty_number on events from the tills
// and the restaurant systems, properties.email on the email provider's.
// Every event's Anchor is its
// strongest identifier. Emails use the reserved example.com, example.org
// and example.net domains; phone numbers are in ranges reserved for drama
// (UK) or the unassigned 555 exchange (US), so no real person is named.
package demo
