package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	_ "github.com/kiln-cdp/kiln/connector/all" // the built-in connectors register themselves
	"github.com/kiln-cdp/kiln/export"
	"github.com/kiln-cdp/kiln/store"
)

// openActions makes the action runtime: the planner the engine calls and
// the dispatcher startActions runs. Settings come from the environment:
// KILN_SECRET_KEY (seals destination secrets; without it destinations
// with secrets, webhooks included, cannot be created or used) and
// KILN_FREQUENCY_CAP ("3/24h": at most 3 automation actions per profile
// in any 24 hours).
func (m *Main) openActions(ctx context.Context) error {
	var key *connector.Key
	if os.Getenv(connector.KeyEnv) != "" {
		var err error
		if key, err = connector.KeyFromEnv(); err != nil {
			return err
		}
	} else {
		m.Logger.Warn(connector.KeyEnv + " is not set: destinations with secrets (webhooks, SMTP passwords, vendor keys) and sources with webhook secrets cannot be created or used")
	}
	m.key = key
	if err := sealSourceSecrets(ctx, m.Store, key, m.Logger); err != nil {
		return err
	}
	fcap, err := parseCap(os.Getenv("KILN_FREQUENCY_CAP"))
	if err != nil {
		return err
	}
	m.Actions = action.New(action.Config{Store: m.Store, Key: key, Logger: m.Logger.With("component", "outbox"), Location: m.location(), Cap: fcap,
		DeliveryOptions: action.DeliveryOptions{AllowPrivate: m.Config.AllowPrivateDestinations, PublicURL: m.Config.PublicURL},
		Metrics:         m.Metrics.Delivery, ReconcileEvery: m.Config.ReconcileEvery,
		Lease: m.Config.DeliveryLease, MaxBackoff: m.Config.DeliveryMaxBackoff,
		TraitValues: func(profileID string) map[string]any {
			vals, _ := m.Engine.ProfileSegments(profileID)
			return vals
		}})
	m.Actions.SegmentExists = func(name string) bool {
		if m.Engine == nil {
			return true
		}
		for _, d := range m.Engine.Definitions() {
			if d.Name == name {
				return d.Kind == "segment"
			}
		}
		return false
	}
	if err := m.Actions.Reload(ctx); err != nil {
		return err
	}
	return nil
}

// parseCap reads "N/DURATION"; "" means no cap.
func parseCap(s string) (action.FrequencyCap, error) {
	if s == "" {
		return action.FrequencyCap{}, nil
	}
	n, d, ok := strings.Cut(s, "/")
	max, err1 := strconv.Atoi(n)
	per, err2 := time.ParseDuration(d)
	if !ok || err1 != nil || err2 != nil || max < 1 || per <= 0 {
		return action.FrequencyCap{}, fmt.Errorf("KILN_FREQUENCY_CAP=%q: want N/DURATION, e.g. 3/24h", s)
	}
	return action.FrequencyCap{Max: max, Per: per}, nil
}

// startActions runs the dispatcher until closeEngine stops it.
func (m *Main) startActions() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Actions.Run(ctx) }()
	exported := make(chan struct{})
	go func() { defer close(exported); m.runExports(ctx) }()
	m.stopAct = func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			m.Logger.Error("outbox dispatcher stopped", "err", err)
		}
		<-exported
		m.stopAct = nil
	}
}

// runExports writes the scheduled exports (-export-dir) until ctx ends.
func (m *Main) runExports(ctx context.Context) {
	if m.Config.ExportDir == "" {
		return
	}
	only := splitList(m.Config.ExportSegments)
	s := &export.Schedule{Dir: m.Config.ExportDir, Every: m.Config.ExportEvery, Formats: splitList(m.Config.ExportFormats),
		Logger: m.Logger.With("component", "export"), Source: export.Source{Store: m.Store, Traits: m.engineTraits},
		Segments: func() []string {
			var out []string
			for _, d := range m.Engine.Definitions() {
				if d.Kind == "segment" && (len(only) == 0 || slices.Contains(only, d.Name)) {
					out = append(out, d.Name)
				}
			}
			return out
		}}
	s.Run(ctx)
}

// engineTraits is a profile's computed traits and model scores.
func (m *Main) engineTraits(pid string) map[string]any {
	vals, _ := m.Engine.ProfileSegments(pid)
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		out[k] = v
	}
	for k, v := range m.Engine.ProfileModelTraits(pid) {
		out[k] = v
	}
	return out
}

const destinationsUsage = `Usage:
  kiln destinations list
  kiln destinations create -name NAME -kind webhook -config '{"url":"https://..."}' [-rate 10]
  kiln destinations create -name mail -kind smtp -config '{"host":"127.0.0.1","port":25,"from":"shop@example.com"}' -secrets '{"password":"..."}'
  kiln destinations create -name klaviyo -kind klaviyo -config '{...}' -secrets '{"api_key":"..."}'
  kiln destinations delete NAME
  kiln destinations reconcile NAME

reconcile compares a connector destination's membership at the vendor
with Kiln's segments now (listing the vendor's members where its API
allows, else re-sending Kiln's state) and queues the differences; the
server also does it every -reconcile-every.

A webhook's signing secret (whsec_...) is generated unless -secrets gives
one, and printed once. Secrets are encrypted with KILN_SECRET_KEY.`

func runDestinations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, destinationsUsage)
		return fmt.Errorf("destinations: give a subcommand: list, create, delete or reconcile")
	}
	var c client
	fs := flag.NewFlagSet("destinations "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	name := fs.String("name", "", "destination name")
	kind := fs.String("kind", "", "webhook, smtp or a connector id ("+strings.Join(connector.IDs(), ", ")+")")
	cfg := fs.String("config", "", "configuration as JSON")
	secrets := fs.String("secrets", "", "secrets as a JSON object of strings")
	rate := fs.Float64("rate", 0, "deliveries per second at most (0: the kind's default)")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "list":
		var out struct{ Destinations []store.Destination }
		if err := c.do(ctx, "GET", "/api/v1/destinations", nil, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tRATE\tCONFIG")
		for _, d := range out.Destinations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\n", d.ID, d.Name, d.Kind, d.RateLimit, d.Config)
		}
		return tw.Flush()
	case "create":
		spec := action.DestinationSpec{Name: *name, Kind: *kind, RateLimit: *rate}
		if *cfg != "" {
			spec.Config = json.RawMessage(*cfg)
		}
		if *secrets != "" {
			if err := json.Unmarshal([]byte(*secrets), &spec.Secrets); err != nil {
				return fmt.Errorf("-secrets: want a JSON object of strings: %v", err)
			}
		}
		var out struct {
			store.Destination
			Secret string `json:"secret"`
		}
		if err := c.do(ctx, "POST", "/api/v1/destinations", nil, spec, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created destination %s (%s, %s)\n", out.Name, out.ID, out.Kind)
		if out.Secret != "" {
			fmt.Fprintf(stdout, "signing secret (shown once; verify webhooks with it): %s\n", out.Secret)
		}
		return nil
	case "delete":
		if fs.Arg(0) == "" {
			return fmt.Errorf("destinations delete: name a destination")
		}
		return c.do(ctx, "DELETE", "/api/v1/destinations/"+url.PathEscape(fs.Arg(0)), nil, nil, nil)
	case "reconcile":
		if fs.Arg(0) == "" {
			return fmt.Errorf("destinations reconcile: name a destination")
		}
		var rep action.ReconcileReport
		if err := c.do(ctx, "POST", "/api/v1/destinations/"+url.PathEscape(fs.Arg(0))+"/reconcile", nil, nil, &rep); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tMODE\tMEMBERS\tLISTED\tADDED\tREMOVED\tUNCHANGED\tUNKNOWN\tUNMANAGED\tERROR")
		failed := 0
		for _, s := range rep.Segments {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Segment, s.Mode, s.Members, s.Listed, s.Added, s.Removed, s.Unchanged, s.Unknown, s.Unmanaged, s.Error)
			if s.Error != "" {
				failed++
			}
		}
		tw.Flush()
		fmt.Fprintf(stdout, "destination %s: %d adds and %d removes queued, %d unchanged\n", rep.Name, rep.Added, rep.Removed, rep.Unchanged)
		if failed > 0 {
			return fmt.Errorf("destinations reconcile: %d segments failed", failed)
		}
		return nil
	}
	fmt.Fprintln(stderr, destinationsUsage)
	return fmt.Errorf("destinations: unknown subcommand %q", args[0])
}

const automationsUsage = `Usage:
  kiln automations list
  kiln automations create -name NAME -segment SEGMENT -on enter|exit -destination DEST
                          [-delay 30m] [-recheck SEGMENT] [-options '{"traits":["email"],"quiet":"21:00-08:00"}'] [-disabled]
  kiln automations enable NAME
  kiln automations disable NAME
  kiln automations delete NAME`

func runAutomations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, automationsUsage)
		return fmt.Errorf("automations: give a subcommand: list, create, enable, disable or delete")
	}
	var c client
	fs := flag.NewFlagSet("automations "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	var spec action.AutomationSpec
	fs.StringVar(&spec.Name, "name", "", "automation name")
	fs.StringVar(&spec.Segment, "segment", "", "the segment whose entries or exits trigger it")
	fs.StringVar(&spec.On, "on", action.OnEnter, "enter or exit")
	fs.StringVar(&spec.Destination, "destination", "", "destination name or id")
	fs.StringVar(&spec.Delay, "delay", "", "wait this long after the transition (e.g. 30m, 24h)")
	fs.StringVar(&spec.Recheck, "recheck", "", "send only if the profile is still in this segment at send time")
	opts := fs.String("options", "", `action options as JSON: traits, channel, quiet, subject, body, op`)
	fs.BoolVar(&spec.Disabled, "disabled", false, "create it disabled")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	if *opts != "" {
		spec.Options = json.RawMessage(*opts)
	}
	switch args[0] {
	case "list":
		var out struct{ Automations []store.Automation }
		if err := c.do(ctx, "GET", "/api/v1/automations", nil, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSEGMENT\tON\tDELAY\tRECHECK\tDESTINATION\tENABLED\tOPTIONS")
		for _, a := range out.Automations {
			name := a.Name
			if a.Hook {
				name += " (REST hook)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", name, a.Segment, a.On, a.Delay, a.Recheck, a.Destination, a.Enabled, a.Options)
		}
		return tw.Flush()
	case "create":
		var a store.Automation
		if err := c.do(ctx, "POST", "/api/v1/automations", nil, spec, &a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created automation %s (%s): on %s of %s -> %s, enabled %t\n", a.Name, a.ID, a.On, a.Segment, spec.Destination, a.Enabled)
		return nil
	case "enable", "disable", "delete":
		if fs.Arg(0) == "" {
			return fmt.Errorf("automations %s: name an automation", args[0])
		}
		path := "/api/v1/automations/" + url.PathEscape(fs.Arg(0))
		if args[0] == "delete" {
			return c.do(ctx, "DELETE", path, nil, nil, nil)
		}
		var a store.Automation
		if err := c.do(ctx, "POST", path+"/"+args[0], nil, nil, &a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "automation %s: enabled %t\n", a.Name, a.Enabled)
		return nil
	}
	fmt.Fprintln(stderr, automationsUsage)
	return fmt.Errorf("automations: unknown subcommand %q", args[0])
}

const deadlettersUsage = `Usage:
  kiln deadletters list [-after ID] [-limit N]
  kiln deadletters replay [ID ...]     (no IDs: every dead letter)`

func runDeadLetters(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, deadlettersUsage)
		return fmt.Errorf("deadletters: give a subcommand: list or replay")
	}
	var c client
	fs := flag.NewFlagSet("deadletters "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	after := fs.Int64("after", 0, "list IDs after this")
	limit := fs.Int("limit", 100, "page size")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "list":
		var out struct {
			Items []store.OutboxItem
			Next  string
		}
		q := url.Values{"after": {strconv.FormatInt(*after, 10)}, "limit": {strconv.Itoa(*limit)}}
		if err := c.do(ctx, "GET", "/api/v1/deadletters", q, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPROFILE\tDESTINATION\tAUTOMATION\tATTEMPTS\tFINISHED\tERROR")
		for _, it := range out.Items {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.ProfileID, it.Destination, it.Automation, it.Attempts, it.FinishedAt.Format(time.RFC3339), it.LastError)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(out.Items) == *limit && out.Next != "" {
			fmt.Fprintf(stdout, "more: kiln deadletters list -after %s\n", out.Next)
		}
		return nil
	case "replay":
		var ids []int64
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return fmt.Errorf("deadletters replay: %q is not an item id", a)
			}
			ids = append(ids, id)
		}
		var out struct{ Replayed int }
		if err := c.do(ctx, "POST", "/api/v1/deadletters/replay", nil, map[string][]int64{"ids": ids}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %d dead letters\n", out.Replayed)
		return nil
	}
	fmt.Fprintln(stderr, deadlettersUsage)
	return fmt.Errorf("deadletters: unknown subcommand %q", args[0])
}

// runSegmentExport: kiln segments export NAME -format csv|ndjson [-o FILE]
func runSegmentExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c client
	fs := flag.NewFlagSet("segments export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	format := fs.String("format", export.CSV, "csv, ndjson or parquet")
	after := fs.Int64("after", -1, "export the entries and exits after this transition id (the cursor the previous run printed; 0 for every change) instead of the members")
	out := fs.String("o", "", "write to this file instead of standard output")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		return fmt.Errorf("segments export: name a segment")
	}
	if c.key == "" {
		return fmt.Errorf("no admin key: pass -key or set KILN_ADMIN_KEY (create one with: kiln keys create -kind admin)")
	}
	u := strings.TrimRight(c.base, "/") + "/api/v1/segments/" + url.PathEscape(name) + "/export?format=" + url.QueryEscape(*format)
	if *after >= 0 {
		u += "&after=" + strconv.FormatInt(*after, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the server at %s: %w (is `kiln serve` running? set -url or KILN_URL)", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		data, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("segments export %s: %w", name, err)
	}
	if *after >= 0 {
		cur := resp.Trailer.Get("Kiln-Cursor")
		if cur == "" {
			return fmt.Errorf("segments export %s: the export was cut short (no cursor at its end); run it again", name)
		}
		fmt.Fprintf(stderr, "cursor: %s (next time: -after %s)\n", cur, cur)
	}
	return nil
}
