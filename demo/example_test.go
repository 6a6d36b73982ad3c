package demo_test

import (
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
)

// Generate streams events in time order; a loader batches them into the
// store. The same Config always gives the same events.
func ExampleGenerate() {
	cfg := demo.Config{Seed: 42, Shop: true, Customers: 50, End: time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC), Years: 0.5}
	orders := 0
	sum, err := demo.Generate(cfg, func(e kiln.Event) error {
		if e.Name == kiln.OrderCompleted && orders == 0 {
			fmt.Println("first order:", e.Anchor, e.Properties["currency"])
		}
		if e.Name == kiln.OrderCompleted {
			orders++
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(orders == sum.Orders, sum.Customers)
	// Output:
	// first order: user_id:C100009 GBP
	// true 50
}
