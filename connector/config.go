package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
)

// Common holds the settings every connector accepts. Embed it in a
// connector's config struct; its fields decode at the top level.
type Common struct {
	// BaseURL overrides the vendor's API address: another region
	// (api.eu.intercom.io), a proxy, or a test server.
	BaseURL string `json:"base_url,omitempty"`
	// BatchSize lowers the number of members per vendor request below the
	// vendor's limit.
	BatchSize int `json:"batch_size,omitempty"`
	// RequestsPerSecond overrides the vendor's documented rate, for
	// accounts with a raised limit.
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
}

// Settings are the resolved common settings.
type Settings struct {
	BaseURL  string // without trailing slash
	MaxBatch int
	Rate     Rate
}

// Resolve applies defaults to c and checks it: base_url must be an
// absolute http(s) URL, batch_size between 1 and the vendor's max.
func (c Common) Resolve(vendor, defaultBase string, maxBatch int, rate Rate) (Settings, error) {
	s := Settings{BaseURL: defaultBase, MaxBatch: maxBatch, Rate: rate}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, fmt.Errorf("%s config: base_url %q must be an absolute http or https URL", vendor, c.BaseURL)
		}
		s.BaseURL = c.BaseURL
	}
	s.BaseURL = strings.TrimRight(s.BaseURL, "/")
	switch {
	case c.BatchSize < 0 || c.BatchSize > maxBatch:
		return s, fmt.Errorf("%s config: batch_size %d must be between 1 and %d (the vendor's limit)", vendor, c.BatchSize, maxBatch)
	case c.BatchSize > 0:
		s.MaxBatch = c.BatchSize
	}
	switch {
	case c.RequestsPerSecond < 0:
		return s, fmt.Errorf("%s config: requests_per_second %g must not be negative", vendor, c.RequestsPerSecond)
	case c.RequestsPerSecond > 0:
		s.Rate.PerSecond = c.RequestsPerSecond
		if b := int(c.RequestsPerSecond); b > s.Rate.Burst {
			s.Rate.Burst = b
		}
	}
	return s, nil
}

// Decode decodes a connector's JSON config into dst (a pointer to struct)
// strictly: unknown fields and trailing data are errors, and every field
// tagged `kiln:"required"` that is left empty is named in one error, so a
// user fixes the configuration in one go. Empty input decodes as {}.
func Decode(vendor string, raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s config: field %s: want %s, got JSON %s", vendor, te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("%s config: %s", vendor, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s config: unexpected data after the JSON object", vendor)
	}
	var missing []string
	collectMissing(reflect.ValueOf(dst).Elem(), &missing)
	if len(missing) > 0 {
		return fmt.Errorf("%s config: missing required %s", vendor, strings.Join(missing, ", "))
	}
	return nil
}

func collectMissing(v reflect.Value, missing *[]string) {
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			collectMissing(v.Field(i), missing)
			continue
		}
		if f.Tag.Get("kiln") != "required" || !isEmpty(v.Field(i)) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		*missing = append(*missing, name)
	}
}

// isEmpty treats empty maps, slices and strings as unset, not only nil ones:
// `"lists": {}` configures nothing.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	}
	return v.IsZero()
}
