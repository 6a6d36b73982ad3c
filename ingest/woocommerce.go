package ingest

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// NewWooCommerceHandler receives WooCommerce order webhooks (topics
// order.created and order.updated). Requests must carry
// X-WC-Webhook-Signature, the base64 HMAC-SHA256 of the raw body keyed with
// the webhook's secret (the source's Secret). An order in status processing
// or completed becomes Order Completed, cancelled becomes Order Cancelled,
// refunded becomes Order Refunded (the whole order); other statuses
// (pending, on-hold, failed, ...) are not purchases yet and are
// acknowledged without an event. Both processing and completed map to the
// same messageId, so an order that passes through both is counted once.
// A processing or completed order's partial refunds (refunds[]) become one
// Order Refunded each, with refund_id and the refunded total. Cancellations
// and refunds are dated by the order's last modification, when its status
// changed.
//
// WooCommerce checks a new webhook's URL with an unsigned form post
// "webhook_id=N"; it is answered 200.
func NewWooCommerceHandler(cfg WebhookConfig) http.Handler {
	h := newWebhook(KindWooCommerce, cfg)
	h.verify = func(wr *webhookRequest) error {
		if isWooPing(wr) {
			return nil
		}
		return verifyHMAC(wr, "X-WC-Webhook-Signature")
	}
	h.handle = handleWooCommerce
	return h
}

func isWooPing(wr *webhookRequest) bool {
	if wr.r.Header.Get("X-WC-Webhook-Signature") != "" || len(wr.body) > 100 {
		return false
	}
	v, err := url.ParseQuery(string(wr.body))
	return err == nil && len(v) == 1 && v.Get("webhook_id") != ""
}

type wooAddress struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Address1  string `json:"address_1"`
	City      string `json:"city"`
	Postcode  string `json:"postcode"`
	Country   string `json:"country"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
}

type wooOrder struct {
	ID               anyID      `json:"id"`
	Number           string     `json:"number"`
	Status           string     `json:"status"`
	Currency         string     `json:"currency"`
	DateCreatedGMT   string     `json:"date_created_gmt"`
	DatePaidGMT      string     `json:"date_paid_gmt"`
	DateCompletedGMT string     `json:"date_completed_gmt"`
	DateModifiedGMT  string     `json:"date_modified_gmt"`
	DiscountTotal    num        `json:"discount_total"`
	ShippingTotal    num        `json:"shipping_total"`
	TotalTax         num        `json:"total_tax"`
	Total            num        `json:"total"`
	CustomerID       anyID      `json:"customer_id"`
	CreatedVia       string     `json:"created_via"`
	PaymentMethod    string     `json:"payment_method"`
	CustomerNote     string     `json:"customer_note"`
	Billing          wooAddress `json:"billing"`
	Shipping         wooAddress `json:"shipping"`
	LineItems        []struct {
		ID          anyID  `json:"id"`
		Name        string `json:"name"`
		ProductID   anyID  `json:"product_id"`
		VariationID anyID  `json:"variation_id"`
		Quantity    num    `json:"quantity"`
		Total       num    `json:"total"`
		SKU         string `json:"sku"`
		Price       num    `json:"price"`
	} `json:"line_items"`
	CouponLines []struct {
		Code string `json:"code"`
	} `json:"coupon_lines"`
	Refunds []struct {
		ID     anyID  `json:"id"`
		Reason string `json:"reason"`
		Total  num    `json:"total"` // negative, as WooCommerce writes refunds
	} `json:"refunds"`
}

func handleWooCommerce(wr *webhookRequest) (webhookResult, error) {
	topic := strings.ToLower(wr.r.Header.Get("X-WC-Webhook-Topic"))
	res := webhookResult{origin: "woocommerce:" + topic}
	if isWooPing(wr) {
		return res, nil
	}
	where := "woocommerce " + firstNonEmpty(topic, "order") + " payload"
	if topic != "" && !strings.HasPrefix(topic, "order.") {
		if !json.Valid(wr.body) {
			return res, webhookJSONError(where, wr.body, json.Unmarshal(wr.body, new(any)))
		}
		res.rejects = append(res.rejects, kiln.Reject{Origin: res.origin, Field: "X-WC-Webhook-Topic", Reason: "topic " + topic + " is not mapped to events: only order.created and order.updated are", Payload: truncate(wr.body)})
		return res, nil
	}
	var o wooOrder
	if err := json.Unmarshal(wr.body, &o); err != nil {
		return res, webhookJSONError(where, wr.body, err)
	}
	if o.ID == "" {
		return res, kiln.Errorf(kiln.EInvalid, "%s: no order id: is this really an order webhook?", where)
	}
	var name, suffix string
	switch strings.ToLower(o.Status) {
	case "processing", "completed":
		name, suffix = kiln.OrderCompleted, "completed"
	case "cancelled":
		name, suffix = kiln.OrderCancelled, "cancelled"
	case "refunded":
		name, suffix = kiln.OrderRefunded, "refunded"
	default:
		return res, nil
	}
	props := map[string]any{
		"order_id": string(o.ID),
		"total":    float64(o.Total),
		// Segment's revenue excludes shipping and tax.
		"revenue":  round2(float64(o.Total) - float64(o.ShippingTotal) - float64(o.TotalTax)),
		"shipping": float64(o.ShippingTotal),
		"tax":      float64(o.TotalTax),
		"discount": float64(o.DiscountTotal),
		"status":   o.Status,
	}
	setIfNotEmpty(props, "order_number", o.Number)
	setIfNotEmpty(props, "currency", o.Currency)
	setIfNotEmpty(props, "payment_method", o.PaymentMethod)
	if len(o.CouponLines) > 0 {
		props["coupon"] = o.CouponLines[0].Code
	}
	products := make([]any, 0, len(o.LineItems))
	for _, li := range o.LineItems {
		p := map[string]any{"quantity": float64(li.Quantity), "price": float64(li.Price)}
		setIfNotEmpty(p, "product_id", string(li.ProductID))
		if li.VariationID != "" && li.VariationID != "0" {
			p["variant"] = string(li.VariationID)
		}
		setIfNotEmpty(p, "sku", li.SKU)
		setIfNotEmpty(p, "name", li.Name)
		products = append(products, p)
	}
	props["products"] = products
	shipToOther := o.Shipping.Address1 != "" && (!strings.EqualFold(o.Shipping.Address1, o.Billing.Address1) || !strings.EqualFold(o.Shipping.LastName, o.Billing.LastName))
	props["ship_to_other"] = shipToOther
	props["gift"] = shipToOther || strings.Contains(strings.ToLower(o.CustomerNote), "gift")

	traits := map[string]any{}
	setIfNotEmpty(traits, "email", o.Billing.Email)
	setIfNotEmpty(traits, "phone", o.Billing.Phone)
	setIfNotEmpty(traits, "first_name", o.Billing.FirstName)
	setIfNotEmpty(traits, "last_name", o.Billing.LastName)
	e := kiln.Event{
		Type:       kiln.Track,
		Name:       name,
		MessageID:  "woocommerce-order-" + string(o.ID) + "-" + suffix,
		Properties: props,
		Context:    map[string]any{"traits": traits},
		// WooCommerce's *_gmt fields carry no zone: they are UTC.
		Timestamp: shopifyTime(o.DatePaidGMT, o.DateCreatedGMT, o.DateCompletedGMT, o.DateModifiedGMT),
	}
	if name != kiln.OrderCompleted {
		e.Timestamp = shopifyTime(o.DateModifiedGMT, o.DateCompletedGMT, o.DatePaidGMT, o.DateCreatedGMT)
	}
	if o.CustomerID != "" && o.CustomerID != "0" { // 0 is a guest checkout
		e.AnonymousID = "woocommerce:" + string(o.CustomerID)
	}
	res.events = append(res.events, mapped{event: e, raw: wr.body})
	if name == kiln.OrderCompleted {
		for _, r := range o.Refunds {
			if r.ID == "" {
				continue
			}
			rp := map[string]any{"order_id": string(o.ID), "refund_id": string(r.ID), "total": math.Abs(float64(r.Total))}
			setIfNotEmpty(rp, "currency", o.Currency)
			setIfNotEmpty(rp, "reason", r.Reason)
			re := kiln.Event{Type: kiln.Track, Name: kiln.OrderRefunded, MessageID: "woocommerce-refund-" + string(r.ID),
				Properties: rp, Context: map[string]any{"traits": traits}, AnonymousID: e.AnonymousID,
				Timestamp: shopifyTime(o.DateModifiedGMT, o.DateCompletedGMT, o.DatePaidGMT, o.DateCreatedGMT)}
			res.events = append(res.events, mapped{event: re, raw: wr.body})
		}
	}
	return res, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func truncate(b []byte) []byte {
	if len(b) > maxRejectPayload {
		b = b[:maxRejectPayload]
	}
	return append([]byte(nil), b...)
}
