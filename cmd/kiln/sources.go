package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

const sourcesUsage = `Usage:
  kiln sources create -name NAME [-kind segment|shopify|woocommerce|sendgrid|mailchimp|import] [-store LOCATION] [-secret WEBHOOK_SECRET]
  kiln sources list`

func runSources(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, sourcesUsage)
		return fmt.Errorf("sources: give a subcommand: create or list")
	}
	var cfg Config
	fs := flag.NewFlagSet("sources "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.storeFlags(fs)
	name := fs.String("name", "", "the source's name, e.g. webstore or pos-store-1")
	kind := fs.String("kind", "segment", "what sends its events")
	storeName := fs.String("store", "", "the store or location its events come from")
	secret := fs.String("secret", "", "shared secret that signs the vendor's webhooks; sealed with KILN_SECRET_KEY, which must be set to the server's key")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	st, err := cfg.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "create":
		s, err := api.CreateSource(ctx, st, *name, *kind, *storeName, *secret, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created source %s (%s)\n", s.Name, s.ID)
		return nil
	case "list":
		ss, err := st.ListSources(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tSTORE\tCREATED")
		for _, s := range ss {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Kind, s.Store, s.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	fmt.Fprintln(stderr, sourcesUsage)
	return fmt.Errorf("sources: unknown subcommand %q", args[0])
}

// sealSourceSecrets seals the webhook secrets of sources stored before
// secrets were sealed at rest. Without a key they stay as they are (and
// keep working) until a server with one starts.
func sealSourceSecrets(ctx context.Context, st store.Store, key *connector.Key, log *slog.Logger) error {
	if key == nil {
		return nil
	}
	n, err := st.SealSourceSecrets(ctx, func(s kiln.Source) ([]byte, error) {
		if err := connector.SealSource(key, &s); err != nil {
			return nil, err
		}
		return s.SealedSecret, nil
	})
	if err != nil {
		return fmt.Errorf("sealing source webhook secrets stored in plaintext: %w", err)
	}
	if n > 0 {
		log.Info("sealed source webhook secrets that were stored in plaintext", "sources", n)
	}
	return nil
}

// openingSources is the webhook handlers' view of the store: sources come
// with their sealed webhook secret opened.
type openingSources struct {
	store.Store
	key *connector.Key
}

func (o openingSources) GetSource(ctx context.Context, idOrName string) (*kiln.Source, error) {
	s, err := o.Store.GetSource(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if err := connector.OpenSource(o.key, s); err != nil {
		return nil, err
	}
	return s, nil
}
