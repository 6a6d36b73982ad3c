package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// NewShopifyHandler receives Shopify webhooks: orders/create (Order
// Completed), orders/cancelled (Order Cancelled), orders/updated (an Order
// Refunded for each refund that caused the update), checkouts/create
// (Checkout Started), customers/create and customers/update (identify with
// consent traits). Requests must carry
// X-Shopify-Hmac-Sha256, the base64 HMAC-SHA256 of the raw body keyed with
// the source's Secret (the app's or shop's webhook signing secret); the
// topic comes from X-Shopify-Topic. Other topics are acknowledged and
// recorded as rejects, so a subscription to a topic Kiln does not map shows
// up instead of vanishing.
//
// Refunds come from orders/updated rather than refunds/create, because a
// refunds/create payload names the order but not the customer, so its
// refund could not be placed on a profile; refunds/create is acknowledged
// and recorded as a reject saying so.
func NewShopifyHandler(cfg WebhookConfig) http.Handler {
	h := newWebhook(KindShopify, cfg)
	h.verify = func(wr *webhookRequest) error {
		return verifyHMAC(wr, "X-Shopify-Hmac-Sha256")
	}
	h.handle = handleShopify
	return h
}

// verifyHMAC checks a base64 HMAC-SHA256 of the body in header.
func verifyHMAC(wr *webhookRequest, header string) error {
	if wr.src.Secret == "" {
		return unauthorized("source %q has no webhook secret configured, so %s cannot be verified: set the source's secret", wr.src.Name, header)
	}
	got := wr.r.Header.Get(header)
	if got == "" {
		return unauthorized("no %s header: the request is not signed", header)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(got))
	if err != nil {
		return unauthorized("%s is not base64: %v", header, err)
	}
	mac := hmac.New(sha256.New, []byte(wr.src.Secret))
	mac.Write(wr.body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return unauthorized("%s does not match the body: wrong secret for source %q, or the body was altered", header, wr.src.Name)
	}
	return nil
}

type shopifyAddress struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Address1    string `json:"address1"`
	Address2    string `json:"address2"`
	City        string `json:"city"`
	Zip         string `json:"zip"`
	CountryCode string `json:"country_code"`
	Phone       string `json:"phone"`
}

// key is what tells two addresses apart for the ship-to-someone-else test.
func (a *shopifyAddress) key() string {
	if a == nil {
		return ""
	}
	norm := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	return norm(a.FirstName) + "|" + norm(a.LastName) + "|" + norm(a.Address1) + "|" + norm(a.Zip) + "|" + norm(a.CountryCode)
}

type shopifyConsent struct {
	State            string `json:"state"` // subscribed, not_subscribed, unsubscribed, pending, redacted, invalid
	OptInLevel       string `json:"opt_in_level"`
	ConsentUpdatedAt string `json:"consent_updated_at"`
}

type shopifyCustomer struct {
	ID                    anyID           `json:"id"`
	Email                 string          `json:"email"`
	Phone                 string          `json:"phone"`
	FirstName             string          `json:"first_name"`
	LastName              string          `json:"last_name"`
	AcceptsMarketing      *bool           `json:"accepts_marketing"`
	EmailMarketingConsent *shopifyConsent `json:"email_marketing_consent"`
	SMSMarketingConsent   *shopifyConsent `json:"sms_marketing_consent"`
	CreatedAt             string          `json:"created_at"`
	UpdatedAt             string          `json:"updated_at"`
	OrdersCount           *int            `json:"orders_count"`
	Tags                  string          `json:"tags"`
	State                 string          `json:"state"`
	VerifiedEmail         *bool           `json:"verified_email"`
	DefaultAddress        *shopifyAddress `json:"default_address"`
}

type shopifyLine struct {
	ID          anyID  `json:"id"`
	ProductID   anyID  `json:"product_id"`
	VariantID   anyID  `json:"variant_id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Title       string `json:"title"`
	Vendor      string `json:"vendor"`
	ProductType string `json:"product_type"`
	Price       num    `json:"price"`
	Quantity    num    `json:"quantity"`
	GiftCard    bool   `json:"gift_card"`
}

type shopifyNameValue struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

type shopifyOrder struct {
	ID                    anyID                   `json:"id"`
	Token                 string                  `json:"token"`
	Name                  string                  `json:"name"`
	OrderNumber           anyID                   `json:"order_number"`
	Email                 string                  `json:"email"`
	ContactEmail          string                  `json:"contact_email"`
	Phone                 string                  `json:"phone"`
	CreatedAt             string                  `json:"created_at"`
	ProcessedAt           string                  `json:"processed_at"`
	UpdatedAt             string                  `json:"updated_at"`
	Currency              string                  `json:"currency"`
	TotalPrice            num                     `json:"total_price"`
	SubtotalPrice         num                     `json:"subtotal_price"`
	TotalTax              num                     `json:"total_tax"`
	TotalDiscounts        num                     `json:"total_discounts"`
	TotalShipping         *shopifyMoneySet        `json:"total_shipping_price_set"`
	DiscountCodes         []struct{ Code string } `json:"discount_codes"`
	FinancialStatus       string                  `json:"financial_status"`
	CheckoutID            anyID                   `json:"checkout_id"`
	CheckoutToken         string                  `json:"checkout_token"`
	LocationID            anyID                   `json:"location_id"`
	SourceName            string                  `json:"source_name"`
	BuyerAcceptsMarketing *bool                   `json:"buyer_accepts_marketing"`
	NoteAttributes        []shopifyNameValue      `json:"note_attributes"`
	Note                  string                  `json:"note"`
	LineItems             []shopifyLine           `json:"line_items"`
	Customer              *shopifyCustomer        `json:"customer"`
	BillingAddress        *shopifyAddress         `json:"billing_address"`
	ShippingAddress       *shopifyAddress         `json:"shipping_address"`
	AbandonedCheckoutURL  string                  `json:"abandoned_checkout_url"`
	TestOrder             bool                    `json:"test"`
	CancelledAt           string                  `json:"cancelled_at"`
	CancelReason          string                  `json:"cancel_reason"`
	Refunds               []shopifyRefund         `json:"refunds"`
}

// shopifyRefund is a refund as orders/updated and refunds/create carry it.
type shopifyRefund struct {
	ID              anyID  `json:"id"`
	OrderID         anyID  `json:"order_id"`
	CreatedAt       string `json:"created_at"`
	ProcessedAt     string `json:"processed_at"`
	Note            string `json:"note"`
	RefundLineItems []struct {
		Quantity num         `json:"quantity"`
		Subtotal num         `json:"subtotal"`
		TotalTax num         `json:"total_tax"`
		LineItem shopifyLine `json:"line_item"`
	} `json:"refund_line_items"`
	Transactions []struct {
		Kind   string `json:"kind"`
		Status string `json:"status"`
		Amount num    `json:"amount"`
	} `json:"transactions"`
	OrderAdjustments []struct {
		Kind   string `json:"kind"`
		Amount num    `json:"amount"`
	} `json:"order_adjustments"`
}

type shopifyMoneySet struct {
	ShopMoney struct {
		Amount       num    `json:"amount"`
		CurrencyCode string `json:"currency_code"`
	} `json:"shop_money"`
}

func handleShopify(wr *webhookRequest) (webhookResult, error) {
	topic := strings.ToLower(strings.TrimSpace(wr.r.Header.Get("X-Shopify-Topic")))
	res := webhookResult{origin: "shopify:" + topic}
	if topic == "" {
		return res, kiln.Errorf(kiln.EInvalid, "no X-Shopify-Topic header: cannot tell what the payload is")
	}
	where := "shopify " + topic + " payload"
	switch topic {
	case "orders/create", "checkouts/create", "orders/cancelled", "orders/updated":
		var o shopifyOrder
		if err := json.Unmarshal(wr.body, &o); err != nil {
			return res, webhookJSONError(where, wr.body, err)
		}
		if o.ID == "" && (o.Token == "" || topic == "orders/cancelled" || topic == "orders/updated") {
			return res, kiln.Errorf(kiln.EInvalid, "%s: no order id: is this really a %s webhook?", where, topic)
		}
		switch topic {
		case "orders/cancelled":
			res.events = append(res.events, mapped{event: shopifyCancelEvent(&o), raw: wr.body})
		case "orders/updated":
			for _, e := range shopifyRefundEvents(&o) {
				res.events = append(res.events, mapped{event: e, raw: wr.body})
			}
		default:
			res.events = append(res.events, mapped{event: shopifyOrderEvent(&o, topic), raw: wr.body})
		}
	case "customers/create", "customers/update":
		var c shopifyCustomer
		if err := json.Unmarshal(wr.body, &c); err != nil {
			return res, webhookJSONError(where, wr.body, err)
		}
		if c.ID == "" {
			return res, kiln.Errorf(kiln.EInvalid, "%s: no customer id: is this really a %s webhook?", where, topic)
		}
		res.events = append(res.events, mapped{event: shopifyCustomerEvent(&c, topic), raw: wr.body})
	default:
		if !json.Valid(wr.body) {
			return res, webhookJSONError(where, wr.body, json.Unmarshal(wr.body, new(any)))
		}
		reason := "topic " + topic + " is not mapped to events: unsubscribe it, or map it"
		if topic == "refunds/create" {
			reason = "refunds/create names the order but not the customer, so the refund cannot be placed on a profile: " +
				"Kiln reads refunds from orders/updated, which carries the customer; subscribe to that and unsubscribe refunds/create"
		}
		res.rejects = append(res.rejects, newReject("", time.Time{}, res.origin, 0, "X-Shopify-Topic", reason, wr.body))
	}
	return res, nil
}

func shopifyTime(ss ...string) time.Time {
	for _, s := range ss {
		if s == "" {
			continue
		}
		if t, err := parseTime(s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func shopifyOrderEvent(o *shopifyOrder, topic string) kiln.Event {
	props := map[string]any{}
	e := kiln.Event{Type: kiln.Track, Properties: props}
	if topic == "checkouts/create" {
		e.Name = kiln.CheckoutStarted
		id := o.Token
		if id == "" {
			id = string(o.ID)
		}
		props["checkout_id"] = id
		setIfNotEmpty(props, "abandoned_checkout_url", o.AbandonedCheckoutURL)
		e.MessageID = "shopify-checkout-" + id + "-created"
		e.Timestamp = shopifyTime(o.CreatedAt, o.UpdatedAt)
	} else {
		e.Name = kiln.OrderCompleted
		props["order_id"] = string(o.ID)
		setIfNotEmpty(props, "order_number", string(o.OrderNumber))
		setIfNotEmpty(props, "order_name", o.Name)
		setIfNotEmpty(props, "checkout_id", firstNonEmpty(o.CheckoutToken, string(o.CheckoutID)))
		setIfNotEmpty(props, "financial_status", o.FinancialStatus)
		e.MessageID = "shopify-order-" + string(o.ID) + "-created"
		e.Timestamp = shopifyTime(o.ProcessedAt, o.CreatedAt)
	}
	// Segment's spec: revenue excludes shipping and tax, total includes them.
	props["revenue"] = float64(o.SubtotalPrice)
	props["total"] = float64(o.TotalPrice)
	props["tax"] = float64(o.TotalTax)
	props["discount"] = float64(o.TotalDiscounts)
	if o.TotalShipping != nil {
		props["shipping"] = float64(o.TotalShipping.ShopMoney.Amount)
	}
	if len(o.DiscountCodes) > 0 {
		props["coupon"] = o.DiscountCodes[0].Code
	}
	setIfNotEmpty(props, "currency", o.Currency)
	if o.TestOrder {
		props["test"] = true
	}
	products := make([]any, 0, len(o.LineItems))
	giftCard := false
	for _, li := range o.LineItems {
		p := map[string]any{
			"price":    float64(li.Price),
			"quantity": float64(li.Quantity),
		}
		setIfNotEmpty(p, "product_id", string(li.ProductID))
		setIfNotEmpty(p, "variant", string(li.VariantID))
		setIfNotEmpty(p, "sku", li.SKU)
		setIfNotEmpty(p, "name", firstNonEmpty(li.Title, li.Name))
		setIfNotEmpty(p, "category", li.ProductType)
		setIfNotEmpty(p, "brand", li.Vendor)
		if li.GiftCard {
			p["gift_card"] = true
			giftCard = true
		}
		products = append(products, p)
	}
	props["products"] = products

	// Gift signals: a gift note attribute, a gift card bought, or goods
	// shipped to someone other than the buyer.
	giftNote := false
	for _, na := range o.NoteAttributes {
		if strings.Contains(strings.ToLower(na.Name), "gift") && truthy(na.Value) {
			giftNote = true
			if s, ok := na.Value.(string); ok && !isBoolWord(s) {
				props["gift_message"] = s
			}
		}
	}
	shipToOther := o.ShippingAddress != nil && o.BillingAddress != nil && o.ShippingAddress.key() != o.BillingAddress.key()
	props["gift_note"] = giftNote
	props["gift_card"] = giftCard
	props["ship_to_other"] = shipToOther
	props["gift"] = giftNote || giftCard || shipToOther

	if o.LocationID != "" {
		e.Store = "shopify-location:" + string(o.LocationID)
	}
	traits := map[string]any{}
	email := firstNonEmpty(o.Email, o.ContactEmail)
	phone := o.Phone
	if c := o.Customer; c != nil {
		email = firstNonEmpty(email, c.Email)
		phone = firstNonEmpty(phone, c.Phone)
		setIfNotEmpty(traits, "first_name", c.FirstName)
		setIfNotEmpty(traits, "last_name", c.LastName)
		if c.ID != "" {
			e.AnonymousID = "shopify:" + string(c.ID)
			props["customer_id"] = string(c.ID)
		}
	}
	if phone == "" && o.BillingAddress != nil {
		phone = o.BillingAddress.Phone
	}
	setIfNotEmpty(traits, "email", email)
	setIfNotEmpty(traits, "phone", phone)
	e.Context = map[string]any{"traits": traits}
	if o.SourceName != "" {
		e.Context["channel"] = o.SourceName
	}
	return e
}

// shopifyCancelEvent maps orders/cancelled: the order's own event with
// its properties, named Order Cancelled, at the cancellation.
func shopifyCancelEvent(o *shopifyOrder) kiln.Event {
	e := shopifyOrderEvent(o, "orders/create")
	e.Name = kiln.OrderCancelled
	e.MessageID = "shopify-order-" + string(o.ID) + "-cancelled"
	e.Timestamp = shopifyTime(o.CancelledAt, o.UpdatedAt)
	setIfNotEmpty(e.Properties, "reason", o.CancelReason)
	return e
}

// shopifyRefundWindow: an orders/updated delivery carries every refund
// the order ever had, and the order is updated for many other reasons
// (fulfilment, tags, notes). Only refunds created within this window
// before the update are taken as its cause and mapped; later updates do
// not record them again (retries of the same delivery share its message
// ids and are deduplicated).
const shopifyRefundWindow = time.Hour

// shopifyRefundEvents maps the refunds that caused an orders/updated
// delivery to Order Refunded events, with the order's customer.
func shopifyRefundEvents(o *shopifyOrder) []kiln.Event {
	updated := shopifyTime(o.UpdatedAt)
	var out []kiln.Event
	for i := range o.Refunds {
		r := &o.Refunds[i]
		at := shopifyTime(r.CreatedAt, r.ProcessedAt)
		if r.ID == "" || !updated.IsZero() && !at.IsZero() && updated.Sub(at) > shopifyRefundWindow {
			continue
		}
		base := shopifyOrderEvent(o, "orders/create") // for the customer and store
		props := map[string]any{"order_id": string(o.ID), "refund_id": string(r.ID)}
		setIfNotEmpty(props, "order_number", string(o.OrderNumber))
		setIfNotEmpty(props, "currency", o.Currency)
		setIfNotEmpty(props, "reason", r.Note)
		// Segment's revenue excludes shipping and tax, as on the order: the
		// refunded lines' subtotals; a refund of money alone (no lines)
		// counts in full, less any shipping it refunds.
		total, shipping, lines, tax := 0.0, 0.0, 0.0, 0.0
		products := make([]any, 0, len(r.RefundLineItems))
		for _, rl := range r.RefundLineItems {
			lines += float64(rl.Subtotal)
			tax += float64(rl.TotalTax)
			li := rl.LineItem
			p := map[string]any{"price": float64(li.Price), "quantity": float64(rl.Quantity)}
			setIfNotEmpty(p, "product_id", string(li.ProductID))
			setIfNotEmpty(p, "variant", string(li.VariantID))
			setIfNotEmpty(p, "sku", li.SKU)
			setIfNotEmpty(p, "name", firstNonEmpty(li.Title, li.Name))
			setIfNotEmpty(p, "category", li.ProductType)
			products = append(products, p)
		}
		for _, tr := range r.Transactions {
			if strings.EqualFold(tr.Kind, "refund") && (tr.Status == "" || strings.EqualFold(tr.Status, "success")) {
				total += float64(tr.Amount)
			}
		}
		for _, a := range r.OrderAdjustments {
			if strings.EqualFold(a.Kind, "shipping_refund") {
				shipping += math.Abs(float64(a.Amount))
			}
		}
		revenue := lines
		if len(r.RefundLineItems) == 0 {
			revenue = math.Max(0, total-shipping)
		}
		props["revenue"] = round2(revenue)
		props["total"] = round2(total)
		props["tax"] = round2(tax)
		props["shipping"] = round2(shipping)
		props["products"] = products
		out = append(out, kiln.Event{
			Type: kiln.Track, Name: kiln.OrderRefunded, Properties: props, Timestamp: at,
			MessageID: "shopify-refund-" + string(r.ID), AnonymousID: base.AnonymousID, Context: base.Context, Store: base.Store,
		})
	}
	return out
}

func shopifyCustomerEvent(c *shopifyCustomer, topic string) kiln.Event {
	traits := map[string]any{}
	setIfNotEmpty(traits, "email", c.Email)
	setIfNotEmpty(traits, "phone", c.Phone)
	setIfNotEmpty(traits, "first_name", c.FirstName)
	setIfNotEmpty(traits, "last_name", c.LastName)
	setIfNotEmpty(traits, "tags", c.Tags)
	traits["shopify_customer_id"] = string(c.ID)
	// email_marketing_consent replaced accepts_marketing in newer API
	// versions; when both are present the newer field wins. Only the
	// resulting email_consent / sms_consent traits are set (the resolver's
	// consent traits): passing accepts_marketing on as well would state
	// email consent twice, possibly both ways.
	if c.EmailMarketingConsent != nil && c.EmailMarketingConsent.State != "" {
		if v, ok := consentState(c.EmailMarketingConsent.State); ok {
			traits[traitEmailConsent] = v
		}
	} else if c.AcceptsMarketing != nil {
		traits[traitEmailConsent] = *c.AcceptsMarketing
	}
	if c.SMSMarketingConsent != nil {
		if v, ok := consentState(c.SMSMarketingConsent.State); ok {
			traits[traitSMSConsent] = v
		}
	}
	if a := c.DefaultAddress; a != nil {
		setIfNotEmpty(traits, "city", a.City)
		setIfNotEmpty(traits, "country", a.CountryCode)
		if c.Phone == "" {
			setIfNotEmpty(traits, "phone", a.Phone)
		}
	}
	ts := shopifyTime(c.UpdatedAt, c.CreatedAt)
	return kiln.Event{
		Type:        kiln.Identify,
		AnonymousID: "shopify:" + string(c.ID),
		Traits:      traits,
		Timestamp:   ts,
		// One event per customer version: a retry of the same update has
		// the same updated_at.
		MessageID: "shopify-customer-" + string(c.ID) + "-" + strings.ReplaceAll(firstNonEmpty(c.UpdatedAt, c.CreatedAt, topic), " ", "_"),
	}
}

// consentState maps Shopify's marketing consent states to granted or not;
// pending (double opt-in not confirmed) and unknown states say nothing.
func consentState(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "subscribed":
		return true, true
	case "not_subscribed", "unsubscribed", "redacted", "invalid":
		return false, true
	}
	return false, false
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func isBoolWord(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "false", "yes", "no", "1", "0", "on", "off":
		return true
	}
	return false
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "", "false", "no", "0", "off":
			return false
		}
		return true
	}
	return false
}
