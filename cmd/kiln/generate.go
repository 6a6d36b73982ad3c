package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
)

// demoFlags registers the generator's flags.
func demoFlags(fs *flag.FlagSet, cfg *demo.Config, end *string) {
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed: the same seed gives the same data")
	fs.BoolVar(&cfg.Shop, "shop", false, "only the chinaware shop (default: both businesses)")
	fs.BoolVar(&cfg.Restaurant, "restaurant", false, "only the restaurant group (default: both businesses)")
	fs.IntVar(&cfg.Customers, "customers", 5000, "shop customers")
	fs.IntVar(&cfg.Guests, "guests", 2000, "restaurant guests")
	fs.Float64Var(&cfg.Years, "years", 2, "years of history")
	fs.StringVar(end, "end", "", "last day of data, YYYY-MM-DD (default: a fixed day, so output is the same every day)")
}

func parseEnd(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-end %q: want a date such as 2025-12-31", s)
	}
	return t, nil
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg demo.Config
	var end, out string
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demoFlags(fs, &cfg, &end)
	fs.StringVar(&out, "out", "-", "output file (NDJSON, one Segment-format event per line); - for stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.End, err = parseEnd(end, time.Time{}); err != nil {
		return err
	}
	w := stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	sum, err := demo.Generate(cfg, func(e kiln.Event) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return enc.Encode(&e)
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "generated", sum)
	return nil
}
