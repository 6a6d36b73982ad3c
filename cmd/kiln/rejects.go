package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln/store"
)

func runRejects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("rejects", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.storeFlags(fs)
	source := fs.String("source", "", "only this source (name or id)")
	after := fs.Int64("after", 0, "only rejects with a greater id (paging)")
	limit := fs.Int("limit", 100, "at most this many")
	payload := fs.Bool("payload", false, "print each raw payload too")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	st, err := cfg.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	src := *source
	if src != "" {
		s, err := st.GetSource(ctx, src)
		if err != nil {
			return fmt.Errorf("rejects: no source %q", src)
		}
		src = s.ID
	}
	rs, err := st.ListRejects(ctx, store.RejectFilter{SourceID: src, After: *after, Limit: *limit})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tSOURCE\tORIGIN\tINDEX\tFIELD\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.ReceivedAt.Format(time.RFC3339), r.SourceID, r.Origin, r.Index, r.Field, r.Reason)
		if *payload {
			fmt.Fprintf(tw, "\t%s\n", r.Payload)
		}
	}
	return tw.Flush()
}
