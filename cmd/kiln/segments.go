package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
)

// runApply: kiln apply -f FILE [-dry-run]
func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c client
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	file := fs.String("f", "", "definitions file (text form); - for stdin")
	dry := fs.Bool("dry-run", false, "check and report what would change, without applying")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("apply: -f FILE is required")
	}
	var src []byte
	var err error
	if *file == "-" {
		src, err = io.ReadAll(os.Stdin)
	} else {
		src, err = os.ReadFile(*file)
	}
	if err != nil {
		return err
	}
	q := url.Values{}
	if *dry {
		q.Set("dry_run", "true")
	}
	var res engine.ApplyResult
	if err := c.do(ctx, "POST", "/api/v1/definitions", q, map[string]string{"text": string(src)}, &res); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	printApply(stdout, &res)
	return nil
}

func printApply(w io.Writer, res *engine.ApplyResult) {
	verb := "applied"
	if res.DryRun {
		verb = "would apply"
	}
	fmt.Fprintf(w, "%s: %d created, %d changed, %d unchanged, %d deleted (%s)\n", verb, len(res.Created), len(res.Changed), len(res.Unchanged), len(res.Deleted), res.Took)
	for _, n := range res.Created {
		fmt.Fprintf(w, "  + %s\n", n)
	}
	for _, n := range res.Changed {
		fmt.Fprintf(w, "  ~ %s\n", n)
	}
	for _, n := range res.Deleted {
		fmt.Fprintf(w, "  - %s\n", n)
	}
	for seg, n := range res.Entered {
		fmt.Fprintf(w, "  %s: %d entered, %d exited\n", seg, n, res.Exited[seg])
	}
	for seg, n := range res.Exited {
		if res.Entered[seg] == 0 {
			fmt.Fprintf(w, "  %s: 0 entered, %d exited\n", seg, n)
		}
	}
}

// runExplain: kiln explain SEGMENT PROFILE
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c client
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	asJSON := fs.Bool("json", false, "print the tree as JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("explain: usage: kiln explain SEGMENT PROFILE (a profile id or an identifier such as email:ann@example.com)")
	}
	var out struct {
		Segment   string
		ProfileID string
		Member    bool
		Tree      *eval.Node
	}
	path := "/api/v1/segments/" + url.PathEscape(fs.Arg(0)) + "/explain/" + url.PathEscape(fs.Arg(1))
	if err := c.do(ctx, "GET", path, nil, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	state := "OUT of"
	if out.Member {
		state = "IN"
	}
	fmt.Fprintf(stdout, "%s is %s %s\n", out.ProfileID, state, out.Segment)
	eval.WriteTree(stdout, out.Tree, "  ")
	return nil
}

const segmentsUsage = `Usage (talks to a running server):
  kiln segments list                                  segments with sizes, versions and freshness
  kiln segments members NAME [-as-of RFC3339] [-limit N] [-after CURSOR]
  kiln segments transitions [NAME] [-after ID] [-limit N]
  kiln segments recompute [NAME]                      recompute one segment or all, showing progress
  kiln segments static NAME [-add ID,ID] [-remove ID,ID]
  kiln segments delete NAME                           delete a definition (members exit)
  kiln segments versions NAME                         every version of a definition
  kiln segments export NAME [-format csv|ndjson] [-o FILE]   every current member with identifiers and traits`

func runSegments(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, segmentsUsage)
		return fmt.Errorf("segments: give a subcommand")
	}
	if args[0] == "export" {
		return runSegmentExport(ctx, args[1:], stdout, stderr)
	}
	var c client
	fs := flag.NewFlagSet("segments "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	asOf := fs.String("as-of", "", "members at this instant (RFC 3339), computed from stored events")
	limit := fs.Int("limit", 100, "page size")
	after := fs.String("after", "", "cursor from the previous page")
	add := fs.String("add", "", "profile ids to add (comma separated)")
	remove := fs.String("remove", "", "profile ids to remove (comma separated)")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	name := fs.Arg(0)
	need := func() error {
		if name == "" {
			return fmt.Errorf("segments %s: name a segment", args[0])
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch args[0] {
	case "list":
		var out struct{ Segments []engine.SegmentInfo }
		if err := c.do(ctx, "GET", "/api/v1/segments", nil, nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(tw, "SEGMENT\tSIZE\tVERSION\tFRESHNESS\tTITLE")
		for _, s := range out.Segments {
			fr := "realtime"
			if s.Freshness != nil {
				fr = s.Freshness.Mode
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Size, s.Version, fr, s.Title)
		}
		return nil
	case "members":
		if err := need(); err != nil {
			return err
		}
		// Pages hold at most 10,000 members: follow the cursor until
		// -limit members are printed.
		type page struct {
			Size       int64
			Members    []kiln.Membership
			ProfileIDs []string `json:"profileIds"`
			Next       string
		}
		cursor, printed := *after, 0
		var out page
		for {
			q := url.Values{"limit": {fmt.Sprint(min(*limit-printed, 10000))}}
			if cursor != "" {
				q.Set("after", cursor)
			}
			if *asOf != "" {
				q.Set("as_of", *asOf)
			}
			out = page{}
			if err := c.do(ctx, "GET", "/api/v1/segments/"+url.PathEscape(name)+"/members", q, nil, &out); err != nil {
				return err
			}
			if printed == 0 {
				if *asOf != "" {
					fmt.Fprintf(stderr, "%d members of %s at %s\n", out.Size, name, *asOf)
				} else {
					fmt.Fprintf(stderr, "%d members of %s\n", out.Size, name)
					fmt.Fprintln(tw, "PROFILE\tSINCE\tVERSION")
				}
			}
			for _, id := range out.ProfileIDs {
				fmt.Fprintln(tw, id)
			}
			for _, m := range out.Members {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", m.ProfileID, m.Since.Format(time.RFC3339), m.Version)
			}
			printed += len(out.ProfileIDs) + len(out.Members)
			cursor = out.Next
			if cursor == "" || printed >= *limit {
				break
			}
		}
		if out.Next != "" {
			fmt.Fprintf(stderr, "more: -after %s\n", out.Next)
		}
		return nil
	case "transitions":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		path := "/api/v1/transitions"
		if name != "" {
			path = "/api/v1/segments/" + url.PathEscape(name) + "/transitions"
		}
		var out struct {
			Transitions []kiln.Transition
			Next        int64
		}
		if err := c.do(ctx, "GET", path, q, nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tAT\tSEGMENT\tPROFILE\tCHANGE\tREASON\tVERSION")
		for _, t := range out.Transitions {
			ch := "exited"
			if t.Entered {
				ch = "entered"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", t.ID, t.At.Format(time.RFC3339), t.Segment, t.ProfileID, ch, t.Reason, t.Version)
		}
		fmt.Fprintf(stderr, "next: -after %d\n", out.Next)
		return nil
	case "recompute":
		path := "/api/v1/recompute"
		if name != "" {
			path = "/api/v1/segments/" + url.PathEscape(name) + "/recompute"
		}
		var j engine.Job
		if err := c.do(ctx, "POST", path, nil, nil, &j); err != nil {
			return err
		}
		for j.State == "running" {
			if j.Total > 0 {
				fmt.Fprintf(stderr, "\rrecomputing: %d of %d events (%.0f%%)", j.Done, j.Total, 100*float64(j.Done)/float64(j.Total))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/jobs/%d", j.ID), nil, nil, &j); err != nil {
				return err
			}
		}
		fmt.Fprintln(stderr)
		if j.State == "failed" {
			return fmt.Errorf("recompute failed: %s", j.Error)
		}
		fmt.Fprintf(stdout, "recomputed %s: %d entered, %d exited, in %s\n", orAll(name), j.Entered, j.Exited, j.FinishedAt.Sub(j.StartedAt).Round(time.Millisecond))
		return nil
	case "static":
		if err := need(); err != nil {
			return err
		}
		body := map[string][]string{"add": splitList(*add), "remove": splitList(*remove)}
		var out struct{ Transitions int }
		if err := c.do(ctx, "PUT", "/api/v1/segments/"+url.PathEscape(name)+"/static", nil, body, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d transitions\n", name, out.Transitions)
		return nil
	case "delete":
		if err := need(); err != nil {
			return err
		}
		var res engine.ApplyResult
		if err := c.do(ctx, "DELETE", "/api/v1/definitions/"+url.PathEscape(name), nil, nil, &res); err != nil {
			return err
		}
		printApply(stdout, &res)
		return nil
	case "versions":
		if err := need(); err != nil {
			return err
		}
		var out struct{ Versions []kiln.Definition }
		if err := c.do(ctx, "GET", "/api/v1/definitions/"+url.PathEscape(name)+"/versions", nil, nil, &out); err != nil {
			return err
		}
		for _, d := range out.Versions {
			del := ""
			if d.DeletedAt != nil {
				del = " (deleted)"
			}
			fmt.Fprintf(stdout, "# version %d, applied %s%s\n%s\n\n", d.Version, d.AppliedAt.Format(time.RFC3339), del, d.Text)
		}
		return nil
	}
	fmt.Fprintln(stderr, segmentsUsage)
	return fmt.Errorf("segments: unknown subcommand %q", args[0])
}

func orAll(name string) string {
	if name == "" {
		return "all segments"
	}
	return name
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
