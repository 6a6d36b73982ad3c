package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Events makes n realistic order events for benchmarks: message ids are
// UUIDs (as Segment's libraries send them, so index inserts land at random
// places) derived from prefix and position, spread over 1000 customers,
// with a payload the size of a real Segment track call (about 1 KiB of
// JSON). The maps are shared between events; stores only read them.
func Events(prefix string, n int, ts time.Time) []kiln.Event {
	ctx := map[string]any{
		"ip":        "203.0.113.7",
		"userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Safari/537.36",
		"library":   map[string]any{"name": "analytics.js", "version": "4.1.0"},
		"page": map[string]any{
			"path": "/checkout/complete", "url": "https://shop.example.com/checkout/complete",
			"referrer": "https://shop.example.com/cart", "title": "Thank you",
		},
		"locale": "fr-FR",
	}
	evs := make([]kiln.Event, n)
	for i := range evs {
		user := strconv.Itoa(i % 1000)
		evs[i] = kiln.Event{
			MessageID:   uuidFor(prefix, i),
			SourceID:    "src_bench",
			Type:        kiln.Track,
			Name:        kiln.OrderCompleted,
			UserID:      user,
			AnonymousID: "anon-" + user,
			Anchor:      "user_id:" + user,
			Timestamp:   ts.Add(time.Duration(i) * time.Millisecond),
			ReceivedAt:  ts.Add(time.Duration(i)*time.Millisecond + time.Second),
			Store:       "store-" + strconv.Itoa(i%5),
			Properties: map[string]any{
				"order_id": fmt.Sprintf("ord-%s-%d", prefix, i), "revenue": 84.5 + float64(i%50), "currency": "EUR",
				"discount": 5.0, "coupon": "SPRING", "shipping": 4.9, "tax": 14.08,
				"products": []any{
					map[string]any{"product_id": "p-1", "sku": "CUP-BLUE", "name": "Blue cup", "category": "Cups", "price": 12.0, "quantity": 2.0},
					map[string]any{"product_id": "p-7", "sku": "PLT-DIN", "name": "Dinner plate", "category": "Plates", "price": 30.25, "quantity": 2.0},
				},
			},
			Context: ctx,
		}
	}
	return evs
}

// uuidFor makes a random-looking but reproducible UUID.
func uuidFor(prefix string, i int) string {
	h := sha256.Sum256([]byte(prefix + "/" + strconv.Itoa(i)))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-a" + x[17:20] + "-" + x[20:32]
}
