package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/kiln-cdp/kiln"
)

const profilesUsage = `Usage (talks to a running server: -url, -key or KILN_URL, KILN_ADMIN_KEY):
  kiln profiles get PROFILE            a profile by id (p_...) or identifier (email:ann@example.com)
  kiln profiles list [-search TEXT] [-limit N] [-after CURSOR]
  kiln profiles delete PROFILE [-suppress]   delete with all its events; -suppress keeps its identifiers from coming back
  kiln profiles merges PROFILE         the merges into and out of a profile
  kiln profiles unmerge MERGE_ID       undo a merge: both profiles get their own events back
  kiln profiles consent PROFILE CHANNEL granted|denied`

func runProfiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, profilesUsage)
		return fmt.Errorf("profiles: give a subcommand")
	}
	var c client
	fs := flag.NewFlagSet("profiles "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	search := fs.String("search", "", "identifier prefix or profile id")
	limit := fs.Int("limit", 50, "page size")
	after := fs.String("after", "", "cursor from the previous page")
	suppress := fs.Bool("suppress", false, "add the deleted profile's identifiers to the suppression list")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	arg := func(i int, what string) (string, error) {
		if fs.NArg() <= i {
			return "", fmt.Errorf("profiles %s: missing %s", args[0], what)
		}
		return fs.Arg(i), nil
	}
	switch args[0] {
	case "get":
		id, err := arg(0, "profile id or identifier")
		if err != nil {
			return err
		}
		var out json.RawMessage
		if err := c.do(ctx, "GET", "/api/v1/profiles/"+url.PathEscape(id), nil, nil, &out); err != nil {
			return err
		}
		_, err = stdout.Write(append(out, '\n'))
		return err
	case "list":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *search != "" {
			q.Set("search", *search)
		}
		if *after != "" {
			q.Set("after", *after)
		}
		var out struct {
			Profiles []kiln.Profile
			Next     string
		}
		if err := c.do(ctx, "GET", "/api/v1/profiles", q, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEVENTS\tLAST SEEN\tIDENTIFIERS")
		for _, p := range out.Profiles {
			ids := make([]string, len(p.Identities))
			for i, id := range p.Identities {
				ids[i] = id.Identifier.String()
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.ID, p.EventCount, p.LastSeen.Format("2006-01-02 15:04"), strings.Join(ids, " "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if out.Next != "" {
			fmt.Fprintf(stderr, "more: -after %s\n", out.Next)
		}
		return nil
	case "delete":
		id, err := arg(0, "profile id or identifier")
		if err != nil {
			return err
		}
		q := url.Values{}
		if *suppress {
			q.Set("suppress", "true")
		}
		var out any
		if err := c.do(ctx, "DELETE", "/api/v1/profiles/"+url.PathEscape(id), q, nil, &out); err != nil {
			return err
		}
		return printJSON(stdout, out)
	case "merges":
		id, err := arg(0, "profile id or identifier")
		if err != nil {
			return err
		}
		var out struct{ Merges []kiln.Merge }
		if err := c.do(ctx, "GET", "/api/v1/profiles/"+url.PathEscape(id)+"/merges", nil, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MERGE\tAT\tINTO\tFROM\tRULE\tEVENT\tIDENTIFIERS\tUNDONE")
		for _, m := range out.Merges {
			ids := make([]string, len(m.Identities))
			for i, id := range m.Identities {
				ids[i] = id.String()
			}
			undone := ""
			if m.UndoneAt != nil {
				undone = m.UndoneAt.Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.At.Format("2006-01-02 15:04"), m.Into, m.From, m.Rule, m.EventSeq, strings.Join(ids, " "), undone)
		}
		return tw.Flush()
	case "unmerge":
		id, err := arg(0, "merge id (see: kiln profiles merges PROFILE)")
		if err != nil {
			return err
		}
		var m kiln.Merge
		if err := c.do(ctx, "POST", "/api/v1/merges/"+url.PathEscape(id)+"/undo", nil, nil, &m); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "undid merge %d: %s is restored beside %s\n", m.ID, m.From, m.Into)
		return nil
	case "consent":
		id, err := arg(0, "profile id or identifier")
		if err != nil {
			return err
		}
		ch, err := arg(1, "channel (email, sms, push, phone)")
		if err != nil {
			return err
		}
		state, err := arg(2, "granted or denied")
		if err != nil {
			return err
		}
		if state != "granted" && state != "denied" {
			return fmt.Errorf("profiles consent: %q: say granted or denied", state)
		}
		var out any
		body := map[string]any{"granted": state == "granted", "source": "cli"}
		if err := c.do(ctx, "PUT", "/api/v1/profiles/"+url.PathEscape(id)+"/consent/"+url.PathEscape(ch), nil, body, &out); err != nil {
			return err
		}
		return printJSON(stdout, out)
	}
	fmt.Fprintln(stderr, profilesUsage)
	return fmt.Errorf("profiles: unknown subcommand %q", args[0])
}
