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
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const asofUsage = `Usage: kiln bench asof [-customers 100000] [-segments a,b,c] [-ago 90d] [-baseline PATH] [-data DIR]

Measures "members of a segment as of a past instant" on a real server: the
store kiln bench restart builds (same -customers, -data), a copy per binary,
and for each segment GET /api/v1/segments/NAME/members?as_of=... timed from
request to answer, with the server's RSS before and after and its peak.`

func runBenchAsOf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := restartOpts{stdout: stdout, stderr: stderr, timeout: time.Hour}
	fs := flag.NewFlagSet("bench asof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, asofUsage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.customers, "customers", 100000, "demo shop customers in the store (as for bench restart)")
	fs.IntVar(&o.guests, "guests", -1, "demo restaurant guests (default: 40% of -customers)")
	fs.Float64Var(&o.years, "years", 2, "years of demo history")
	fs.StringVar(&o.data, "data", filepath.Join(os.TempDir(), "kiln-bench-restart"), "directory of the built stores (shared with bench restart)")
	fs.StringVar(&o.bin, "binary", "", "the kiln binary under test (default: this one)")
	fs.StringVar(&o.baseline, "baseline", "", "a kiln binary built from an older commit")
	segs := fs.String("segments", "high_value,lapsed_customers,gift_buyers,regulars", "segments to ask about, comma separated")
	ago := fs.Duration("ago", 90*24*time.Hour, "how far back the instant is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.guests < 0 {
		o.guests = o.customers * 2 / 5
	}
	if o.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.bin = exe
	}
	b, err := buildRestartStore(ctx, &o)
	if err != nil {
		return err
	}
	at := time.Now().Add(-*ago).UTC().Truncate(time.Second)
	bins := []restartBinary{{name: "new", path: o.bin}}
	if o.baseline != "" {
		bins = append(bins, restartBinary{name: "baseline", path: o.baseline})
	}
	fmt.Fprintf(stdout, "load average before: %s", loadavg())
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "binary\tsegment\tmembers\tseconds\tRSS before MiB\tRSS after MiB\tpeak RSS MiB\t\n")
	for _, bin := range bins {
		if err := asofRun(ctx, &o, bin, b, strings.Split(*segs, ","), at, tw); err != nil {
			tw.Flush()
			return fmt.Errorf("%s: %w", bin.name, err)
		}
	}
	fmt.Fprintf(tw, "(%d events, %d profiles; as of %s)\t\t\t\t\t\t\t\n", b.Events, b.Profiles, at.Format(time.RFC3339))
	tw.Flush()
	fmt.Fprintf(stdout, "load average after: %s", loadavg())
	return nil
}

func asofRun(ctx context.Context, o *restartOpts, bin restartBinary, b *restartStore, segs []string, at time.Time, tw io.Writer) error {
	work := filepath.Join(o.data, "asof-"+bin.name)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	db := filepath.Join(work, "kiln.db")
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(b.db()+suffix, db+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	addr, err := loopbackAddr()
	if err != nil {
		return err
	}
	srv, err := startRestartServer(o, bin.path, b, db, addr, filepath.Join(work, "serve.log"), nil)
	if err != nil {
		return err
	}
	defer srv.kill()
	if err := srv.waitReady(ctx, o.timeout); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 30 * time.Minute}
	for _, seg := range segs {
		seg = strings.TrimSpace(seg)
		before := procStatus(srv.pid())
		t := time.Now()
		u := fmt.Sprintf("%s/api/v1/segments/%s/members?as_of=%s&limit=1", srv.url(), url.PathEscape(seg), url.QueryEscape(at.Format(time.RFC3339)))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+b.AdminKey)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		var body struct {
			Size int64 `json:"size"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s: %s", u, resp.Status, raw)
		}
		json.Unmarshal(raw, &body)
		after := procStatus(srv.pid())
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%d\t%d\t%d\t\n", bin.name, seg, body.Size, took.Seconds(), before["VmRSS"]>>20, after["VmRSS"]>>20, after["VmHWM"]>>20)
	}
	_, err = srv.stop(syscall.SIGTERM, time.Minute)
	return err
}
