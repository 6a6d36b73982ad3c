// Command kiln is Kiln's single binary: the server, the demo, the
// generator, bulk import and the admin CLI. One file per subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/kiln-cdp/kiln"
)

const usage = `kiln keeps customer segments current in real time.

Usage: kiln <command> [flags]

Server:
  serve       run the server (HTTP API, ingest, engine) on SQLite or PostgreSQL
  demo        run the server on a local SQLite file loaded with generated demo data

Data:
  generate    write the demo data set as NDJSON
  import      bulk import a CSV or NDJSON file (resumable)
  rejects     list messages set aside at ingest, with the reason

Segments (talk to a running server, except test):
  apply       apply definitions from a file: kiln apply -f shop.kiln
  segments    list, members (also -as-of), transitions, recompute, static, versions, delete
  explain     why a profile is in or out of a segment: kiln explain SEGMENT PROFILE
  test        run definition tests (.kilntest files) without a server: kiln test shop_test.kilntest

Customer intelligence (talks to a running server):
  models      report or refit the customer models (BG/NBD, Gamma-Gamma, CLV, RFM, clusters)

Actions (talk to a running server):
  destinations  create, list or delete webhook, SMTP and vendor destinations
  automations   create, list, enable, disable or delete segment automations
  deadletters   list or replay actions that could not be delivered

Admin:
  keys        create, list or revoke API keys
  sources     create or list event sources
  profiles    get, list, delete, merges, unmerge (talks to a running server)

Other:
  bench       measure ingest, the engine, latency, a refit's memory or restarts (bench ingest, engine, latency, models, restart)
  version     print the version

Run "kiln <command> -h" for a command's flags. Every flag can also be set by
the environment variable named in its help (KILN_...).`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startProfiling()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	profileReady()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kiln:", describe(err))
		os.Exit(1)
	}
}

// describe gives the user message of a kiln error, or the error text.
func describe(err error) string {
	if c := kiln.ErrorCode(err); c != kiln.EInternal {
		return kiln.ErrorMessage(err)
	}
	return err.Error()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "generate":
		return runGenerate(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "rejects":
		return runRejects(ctx, rest, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, stdout, stderr)
	case "sources":
		return runSources(ctx, rest, stdout, stderr)
	case "profiles":
		return runProfiles(ctx, rest, stdout, stderr)
	case "apply":
		return runApply(ctx, rest, stdout, stderr)
	case "explain":
		return runExplain(ctx, rest, stdout, stderr)
	case "test":
		return runTest(ctx, rest, stdout, stderr)
	case "segments":
		return runSegments(ctx, rest, stdout, stderr)
	case "models":
		return runModels(ctx, rest, stdout, stderr)
	case "destinations":
		return runDestinations(ctx, rest, stdout, stderr)
	case "automations":
		return runAutomations(ctx, rest, stdout, stderr)
	case "deadletters":
		return runDeadLetters(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kiln", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
