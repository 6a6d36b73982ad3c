package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/kiln-cdp/kiln/engine"
)

const modelsUsage = `Usage (talks to a running server):
  kiln models report [-json]        the fitted customer models: parameters, fit, holdout check, RFM groups, clusters
  kiln models refit [-calibration-end DATE -holdout-end DATE] [-unit weeks|days] [-json]`

func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, modelsUsage)
		return fmt.Errorf("models: give a subcommand: report or refit")
	}
	var c client
	fs := flag.NewFlagSet("models "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	calEnd := fs.String("calibration-end", "", "fit on purchases up to this date (YYYY-MM-DD)")
	holdEnd := fs.String("holdout-end", "", "check predictions against purchases from -calibration-end to this date")
	unit := fs.String("unit", "weeks", "the models' time unit: weeks or days")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	var rep engine.ModelReport
	switch args[0] {
	case "report":
		if err := c.do(ctx, "GET", "/api/v1/models", nil, nil, &rep); err != nil {
			return err
		}
	case "refit":
		q := url.Values{"unit": {*unit}}
		if *calEnd != "" {
			q.Set("calibration_end", *calEnd)
		}
		if *holdEnd != "" {
			q.Set("holdout_end", *holdEnd)
		}
		if err := c.do(ctx, "POST", "/api/v1/models/refit", q, nil, &rep); err != nil {
			return err
		}
	default:
		fmt.Fprintln(stderr, modelsUsage)
		return fmt.Errorf("models: unknown subcommand %q", args[0])
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printModelReport(stdout, &rep)
	return nil
}

func printModelReport(w io.Writer, rep *engine.ModelReport) {
	fmt.Fprintf(w, "Customer models fitted %s on purchases up to %s (%d purchases, time unit %s, took %s)\n\n",
		rep.FittedAt.Format("2006-01-02 15:04"), rep.CalibrationEnd.Format("2006-01-02"), rep.Purchases, rep.Unit, rep.Took)
	fmt.Fprintln(w, rep.Fit.String())
	if rep.Check != nil {
		fmt.Fprintf(w, "\nHoldout check (fitted on purchases before %s, predictions compared with what customers did after):\n", rep.HoldoutFrom.Format("2006-01-02"))
		if h := rep.Check.Holdout; h != nil {
			fmt.Fprintf(w, "  predicted %.0f repeat purchases, actual %d (%+.1f%%)\n", h.Predicted, h.Actual, 100*(h.Predicted-float64(h.Actual))/max(1, float64(h.Actual)))
			fmt.Fprintln(w, "  repeat purchases in calibration   customers   predicted   actual")
			for _, r := range h.ByFrequency {
				fmt.Fprintf(w, "  %31d   %9d   %9.1f   %6d\n", r.Frequency, r.Customers, r.Predicted, r.Actual)
			}
		} else {
			fmt.Fprintf(w, "  not available: %s\n", strings.Join(rep.Check.Errors, "; "))
		}
	}
	if len(rep.RFM) > 0 {
		fmt.Fprintln(w, "\nRFM groups:")
		names := make([]string, 0, len(rep.RFM))
		for n := range rep.RFM {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool { return rep.RFM[names[i]] > rep.RFM[names[j]] })
		for _, n := range names {
			fmt.Fprintf(w, "  %-22s %7d\n", n, rep.RFM[n])
		}
	}
	if len(rep.Clusters) > 0 {
		fmt.Fprintln(w, "\nClusters (k chosen by silhouette):")
		for i, c := range rep.Clusters {
			fmt.Fprintf(w, "  %d. %-45s %6d customers (%4.1f%%)\n", i+1, c.Description, c.Size, 100*c.Share)
		}
	}
	fmt.Fprintf(w, "\n%d customers carry the model traits (%s) for segment definitions.\n", rep.Scored, strings.Join([]string{engine.TraitChurnRisk, engine.TraitCLV, engine.TraitRFMSegment, engine.TraitCluster, "..."}, ", "))
}
