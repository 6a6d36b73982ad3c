package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Configuration errors name the setting and what is wrong with it.
func TestConfigErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "rfm.json")
	os.WriteFile(bad, []byte(`{"Segments": [{"Name": "Champions", "R": [4, 9], "F": [4, 5], "M": [4, 5]}]}`), 0o644)
	good := filepath.Join(dir, "rfm-good.json")
	os.WriteFile(good, []byte(`{"Segments": [{"Name": "Best", "R": [4, 5], "F": [4, 5], "M": [1, 5]}, {"Name": "Rest", "R": [1, 5], "F": [1, 5], "M": [1, 5]}]}`), 0o644)
	base := Config{DB: "x.db", LogFormat: "text", LogLevel: "info", Timezone: "UTC"}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.LogFormat = "xml" }, "-log-format"},
		{func(c *Config) { c.LogLevel = "loud" }, "-log-level"},
		{func(c *Config) { c.Timezone = "Mars/Olympus" }, "-timezone"},
		{func(c *Config) { c.RateLimit = -1 }, "-rate-limit"},
		{func(c *Config) { c.RFMConfig = bad }, "-rfm-config"},
		{func(c *Config) { c.RFMConfig = filepath.Join(dir, "missing.json") }, "-rfm-config"},
		{func(c *Config) { c.Currency = "pounds" }, `-currency "pounds": use a three-letter ISO 4217 code`},
		{func(c *Config) { c.Rates = "EUR 0.86 GBP" }, `-rates: rate "EUR 0.86 GBP": want "1 EUR = 0.86 GBP"`},
	} {
		cfg := base
		c.change(&cfg)
		err := cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %s, got %v", c.want, err)
		}
	}
	cfg := base
	cfg.RFMConfig = good
	cfg.Currency, cfg.Rates = "GBP", "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP"
	if err := cfg.validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	if rc, _ := cfg.rfm(); len(rc.Segments) != 2 {
		t.Fatalf("rfm config: %+v", rc)
	}
}
