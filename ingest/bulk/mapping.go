package bulk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// File formats.
const (
	FormatCSV        = "csv"        // RFC 4180, header line by default
	FormatTSV        = "tsv"        // tab-separated, header line by default
	FormatWhitespace = "whitespace" // fields separated by runs of spaces/tabs, no header by default
	FormatNDJSON     = "ndjson"     // one JSON object per line; columns are keys ("a.b" for nested)
	// FormatSegment is NDJSON of Segment messages (a Segment or RudderStack
	// export): each line is decoded as the tracking API would, with
	// timestamps taken as already corrected; no fields are mapped.
	FormatSegment = "segment"
)

// Mapping says how the rows of a file become events. Fields maps a target
// to a column (see Mapping.Fields); everything else has a default.
//
// A mapping in JSON, for an order-lines file:
//
//	{"format": "csv", "event": "Order Completed",
//	 "timestampLayout": "2006-01-02 15:04:05", "timeZone": "Europe/London",
//	 "fields": {"userId": "CustomerID", "timestamp": "InvoiceDate",
//	            "products[].sku": "StockCode", "products[].price": "UnitPrice:number",
//	            "products[].quantity": "Quantity:int"},
//	 "constants": {"properties.currency": "GBP"},
//	 "order": {"idColumn": "InvoiceNo", "refundPrefix": "C", "revenue": true}}
type Mapping struct {
	// Format is csv (default), tsv, whitespace or ndjson.
	Format string `json:"format,omitempty"`
	// Delimiter overrides the csv field separator (one character).
	Delimiter string `json:"delimiter,omitempty"`
	// Header says whether the first line names the columns (default: true
	// for csv and tsv, false for whitespace; ignored for ndjson).
	Header *bool `json:"header,omitempty"`
	// Columns names the columns of a file without a header, in order (or
	// renames a header's columns).
	Columns []string `json:"columns,omitempty"`

	// Type is the call type of the events: track (default) or identify.
	Type string `json:"type,omitempty"`
	// Event is a constant event name for track; a "event" field takes the
	// name from a column instead.
	Event string `json:"event,omitempty"`
	// TimestampLayout reads the "timestamp" column: a Go time layout
	// ("2006-01-02 15:04:05"), or rfc3339 (default), unix, unixms.
	TimestampLayout string `json:"timestampLayout,omitempty"`
	// TimeZone is the IANA zone of timestamps without one (default UTC).
	TimeZone string `json:"timeZone,omitempty"`

	// Fields maps targets to columns. Targets: userId, anonymousId, email,
	// phone, loyalty, messageId, event, timestamp, store, properties.NAME,
	// traits.NAME, context.NAME, and with Order products[].NAME. A column
	// may end in a type: "dollars:number", "cds:int", "flag:bool" (default
	// string; ndjson values keep their JSON types). Empty cells are left out.
	Fields map[string]string `json:"fields"`
	// Constants sets the same value on every event: "properties.currency": "GBP".
	Constants map[string]any `json:"constants,omitempty"`

	// Order groups consecutive lines with the same order id into one event
	// with a products[] list.
	Order *OrderGrouping `json:"order,omitempty"`
}

// OrderGrouping turns order-line files into one event per order.
type OrderGrouping struct {
	// IDColumn holds the order id; consecutive lines with the same id are
	// one order. It becomes properties.order_id.
	IDColumn string `json:"idColumn"`
	// RefundPrefix marks refund orders: ids starting with it become Order
	// Refunded, with quantities and revenue as positive amounts refunded.
	RefundPrefix string `json:"refundPrefix,omitempty"`
	// Revenue sets properties.revenue to the sum of products' price × quantity.
	Revenue bool `json:"revenue,omitempty"`
}

// valueType converts a cell.
type valueType int

const (
	typeString valueType = iota
	typeNumber
	typeInt
	typeBool
	typeAuto // ndjson: keep the JSON type
)

var typeNames = map[string]valueType{"string": typeString, "number": typeNumber, "float": typeNumber, "int": typeInt, "integer": typeInt, "bool": typeBool}

// splitColumn reads "column:type".
func splitColumn(spec string) (string, valueType, bool) {
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		if t, ok := typeNames[strings.ToLower(spec[i+1:])]; ok {
			return spec[:i], t, true
		}
	}
	return spec, typeString, false
}

var topTargets = map[string]bool{
	"userId": true, "anonymousId": true, "email": true, "phone": true, "loyalty": true,
	"messageId": true, "event": true, "timestamp": true, "store": true,
}

// ParseField reads a flag-style field mapping "target=column[:type]", e.g.
// "properties.revenue=dollars:number" or "userId=CustomerID".
func ParseField(s string) (target, column string, err error) {
	target, column, ok := strings.Cut(s, "=")
	target, column = strings.TrimSpace(target), strings.TrimSpace(column)
	if !ok || target == "" || column == "" {
		return "", "", fmt.Errorf("field mapping %q: want target=column, e.g. userId=CustomerID or properties.revenue=dollars:number", s)
	}
	if err := checkTarget(target, true); err != nil {
		return "", "", err
	}
	return target, column, nil
}

// SetField adds a flag-style field mapping (see ParseField) to m, for
// command lines like --field userId=CustomerID --field properties.revenue=dollars:number.
func (m *Mapping) SetField(spec string) error {
	target, column, err := ParseField(spec)
	if err != nil {
		return err
	}
	if m.Fields == nil {
		m.Fields = map[string]string{}
	}
	m.Fields[target] = column
	return nil
}

func checkTarget(t string, products bool) error {
	if topTargets[t] {
		return nil
	}
	for _, p := range []string{"properties.", "traits.", "context."} {
		if strings.HasPrefix(t, p) && len(t) > len(p) {
			return nil
		}
	}
	if products && strings.HasPrefix(t, "products[].") && len(t) > len("products[].") {
		return nil
	}
	return fmt.Errorf("unknown target %q: use userId, anonymousId, email, phone, loyalty, messageId, event, timestamp, store, properties.NAME, traits.NAME, context.NAME or products[].NAME", t)
}

// ParseMapping reads a mapping from JSON, rejecting unknown keys, and
// validates it.
func ParseMapping(data []byte) (Mapping, error) {
	var m Mapping
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("mapping: %v", err)
	}
	return m, m.Validate()
}

// Validate checks the mapping and names the first problem.
func (m *Mapping) Validate() error {
	switch m.Format {
	case "", FormatCSV, FormatTSV, FormatWhitespace, FormatNDJSON:
	case FormatSegment:
		if len(m.Fields) > 0 || len(m.Constants) > 0 || m.Order != nil || m.Event != "" || m.Type != "" {
			return fmt.Errorf("mapping: format segment reads Segment messages as they are: fields, constants, order, event and type do not apply")
		}
		return nil
	default:
		return fmt.Errorf("mapping: format %q: use csv, tsv, whitespace, ndjson or segment", m.Format)
	}
	if m.Delimiter != "" && len([]rune(m.Delimiter)) != 1 {
		return fmt.Errorf("mapping: delimiter %q must be one character", m.Delimiter)
	}
	switch kiln.EventType(m.Type) {
	case "", kiln.Track, kiln.Identify:
	default:
		return fmt.Errorf("mapping: type %q: imports make track or identify events", m.Type)
	}
	if len(m.Fields) == 0 {
		return fmt.Errorf("mapping: no fields: map at least an identifier, e.g. \"userId\": \"customer_id\"")
	}
	targets := make([]string, 0, len(m.Fields))
	for t := range m.Fields {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	hasID := false
	for _, t := range targets {
		if err := checkTarget(t, m.Order != nil); err != nil {
			if strings.HasPrefix(t, "products[].") {
				return fmt.Errorf("mapping: fields: %s needs \"order\" grouping (order.idColumn)", t)
			}
			return fmt.Errorf("mapping: fields: %v", err)
		}
		if m.Fields[t] == "" {
			return fmt.Errorf("mapping: fields: %s has no column", t)
		}
		switch t {
		case "userId", "anonymousId", "email", "phone", "loyalty", "traits.email", "traits.phone", "context.traits.email":
			hasID = true
		}
	}
	for t := range m.Constants {
		if err := checkTarget(t, false); err != nil || t == "timestamp" || t == "messageId" {
			return fmt.Errorf("mapping: constants: %q cannot be a constant: use properties.NAME, traits.NAME, context.NAME, event or store", t)
		}
	}
	if !hasID {
		return fmt.Errorf("mapping: fields: no identifier: map userId, anonymousId, email, phone or loyalty to a column")
	}
	if (m.Type == "" || m.Type == string(kiln.Track)) && m.Event == "" && m.Fields["event"] == "" && m.Constants["event"] == nil {
		return fmt.Errorf("mapping: track events need a name: set \"event\" or map the event field to a column")
	}
	if m.TimestampLayout != "" && m.Fields["timestamp"] == "" {
		return fmt.Errorf("mapping: timestampLayout is set but no column is mapped to timestamp")
	}
	if m.TimeZone != "" {
		if _, err := time.LoadLocation(m.TimeZone); err != nil {
			return fmt.Errorf("mapping: timeZone %q: %v", m.TimeZone, err)
		}
	}
	if m.Order != nil && m.Order.IDColumn == "" {
		return fmt.Errorf("mapping: order: idColumn is required")
	}
	return nil
}

// Presets are ready mappings for known files.
var presets = map[string]Mapping{
	// CDNOW_sample.txt: master id, sample id, YYYYMMDD, CDs, dollars;
	// whitespace-separated, no header.
	"cdnow": {
		Format:          FormatWhitespace,
		Columns:         []string{"customer_id", "sample_id", "date", "cds", "dollars"},
		Event:           kiln.OrderCompleted,
		TimestampLayout: "20060102",
		Fields: map[string]string{
			"userId":              "customer_id",
			"timestamp":           "date",
			"properties.revenue":  "dollars:number",
			"properties.quantity": "cds:int",
		},
		Constants: map[string]any{"properties.currency": "USD"},
	},
	// CDNOW_master.txt: the same without the sample id, with a header line.
	"cdnow-master": {
		Format:          FormatWhitespace,
		Header:          ptr(true),
		Event:           kiln.OrderCompleted,
		TimestampLayout: "20060102",
		Fields: map[string]string{
			"userId":              "customer_id",
			"timestamp":           "date",
			"properties.revenue":  "dollar_value:number",
			"properties.quantity": "number_of_cds:int",
		},
		Constants: map[string]any{"properties.currency": "USD"},
	},
	// online_retail.csv(.gz), UCI "Online Retail": one line per invoice
	// line, grouped into orders by InvoiceNo; "C" invoices are cancellations.
	"online-retail": {
		Format:          FormatCSV,
		Event:           kiln.OrderCompleted,
		TimestampLayout: "2006-01-02 15:04:05",
		TimeZone:        "Europe/London",
		Fields: map[string]string{
			"userId":              "CustomerID",
			"timestamp":           "InvoiceDate",
			"properties.country":  "Country",
			"products[].sku":      "StockCode",
			"products[].name":     "Description",
			"products[].quantity": "Quantity:int",
			"products[].price":    "UnitPrice:number",
		},
		Constants: map[string]any{"properties.currency": "GBP"},
		Order:     &OrderGrouping{IDColumn: "InvoiceNo", RefundPrefix: "C", Revenue: true},
	},
	// online_retail_ii_*.csv(.gz), UCI "Online Retail II": the same with
	// that release's column names.
	"online-retail-ii": {
		Format:          FormatCSV,
		Event:           kiln.OrderCompleted,
		TimestampLayout: "2006-01-02 15:04:05",
		TimeZone:        "Europe/London",
		Fields: map[string]string{
			"userId":              "Customer ID",
			"timestamp":           "InvoiceDate",
			"properties.country":  "Country",
			"products[].sku":      "StockCode",
			"products[].name":     "Description",
			"products[].quantity": "Quantity:int",
			"products[].price":    "Price:number",
		},
		Constants: map[string]any{"properties.currency": "GBP"},
		Order:     &OrderGrouping{IDColumn: "Invoice", RefundPrefix: "C", Revenue: true},
	},
}

func ptr[T any](v T) *T { return &v }

// Preset returns a copy of a named ready mapping.
func Preset(name string) (Mapping, error) {
	p, ok := presets[name]
	if !ok {
		return Mapping{}, fmt.Errorf("no preset %q: known presets are %s", name, strings.Join(PresetNames(), ", "))
	}
	// Deep-copy the maps so callers may adjust their copy.
	b, _ := json.Marshal(p)
	var m Mapping
	_ = json.Unmarshal(b, &m)
	return m, nil
}

// PresetNames lists the presets.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
