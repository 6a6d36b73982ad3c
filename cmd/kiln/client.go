package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client talks to a running server's admin API; commands that change the
// engine's in-memory state (delete, unmerge) must go through the server.
type client struct {
	base string
	key  string
	http *http.Client
}

func (c *client) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.base, "url", envOr("KILN_URL", "http://127.0.0.1:8080"), "the Kiln server's URL (KILN_URL)")
	fs.StringVar(&c.key, "key", envOr("KILN_ADMIN_KEY", ""), "an admin key (KILN_ADMIN_KEY)")
}

// do sends a request and decodes a JSON answer into out (if not nil). A
// non-2xx answer becomes an error with the server's message.
func (c *client) do(ctx context.Context, method, path string, q url.Values, body any, out any) error {
	if c.key == "" {
		return fmt.Errorf("no admin key: pass -key or set KILN_ADMIN_KEY (create one with: kiln keys create -kind admin)")
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 5 * time.Minute}
	}
	u := strings.TrimRight(c.base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	// A server that is still loading its state answers 503 with
	// Retry-After: wait for it, up to a minute, as a person would.
	var resp *http.Response
	var data []byte
	for wait := time.Now().Add(time.Minute); ; {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if resp, err = c.http.Do(req); err != nil {
			return fmt.Errorf("reaching the server at %s: %w (is `kiln serve` running? set -url or KILN_URL)", c.base, err)
		}
		data, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusServiceUnavailable || after <= 0 || time.Now().After(wait) {
			break
		}
		select {
		case <-time.After(time.Duration(after) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseArgs parses flags wherever they stand among the positional
// arguments ("segments members NAME -limit 5" as well as "-limit 5 NAME"),
// as people type them. Positional arguments keep their order.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
					continue
				}
				if i+1 < len(args) {
					i++
					flags = append(flags, args[i])
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return fs.Parse(append(flags, append([]string{"--"}, pos...)...))
}
