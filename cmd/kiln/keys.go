package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
)

const keysUsage = `Usage:
  kiln keys create -kind write -source NAME [-name LABEL]   a write key: can only send events for that source
  kiln keys create -kind admin [-name LABEL]                an admin key: can do everything
  kiln keys list
  kiln keys revoke ID_OR_PREFIX

Keys work directly on the database (-db or -postgres), so the first admin
key can be made before the server runs (or while it runs). The token is
printed once; only its hash is stored.`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return fmt.Errorf("keys: give a subcommand: create, list or revoke")
	}
	var cfg Config
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.storeFlags(fs)
	kind := fs.String("kind", "write", "write or admin")
	name := fs.String("name", "", "a label for the key")
	source := fs.String("source", "", "the source a write key sends for (name or id)")
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
		k, tok, err := api.CreateKey(ctx, st, kiln.KeyKind(*kind), *name, *source, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created %s key %s; the token is shown only now:\n", k.Kind, k.ID)
		fmt.Fprintln(stdout, tok)
		return nil
	case "list":
		ks, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tPREFIX\tNAME\tSOURCE\tCREATED\tREVOKED")
		for _, k := range ks {
			rev := ""
			if k.RevokedAt != nil {
				rev = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Prefix, k.Name, k.SourceID, k.CreatedAt.Format(time.RFC3339), rev)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("keys revoke: give one key id or prefix")
		}
		if err := st.RevokeKey(ctx, fs.Arg(0), time.Now().UTC()); err != nil {
			if kiln.ErrorCode(err) == kiln.ENotFound {
				return fmt.Errorf("keys revoke: no key with id or prefix %q", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return nil
	}
	fmt.Fprintln(stderr, keysUsage)
	return fmt.Errorf("keys: unknown subcommand %q", args[0])
}
