// Package ruletest runs definition tests: files (.kilntest) that give
// profiles' events at instants and the memberships, computed trait
// values, explanations and transitions expected at later instants, the
// way promtool tests Prometheus rules. `kiln test FILE` runs them without
// a server; the shipped libraries carry theirs (rule/library). It does no
// I/O besides reading the files it is given (Parse takes an fs.FS).
//
// The format, for users, is docs/TESTING_DEFINITIONS.md:
//
//	tz Europe/London                    # optional, before the first at (default UTC)
//	currency GBP                        # optional, before the first at: the workspace currency (default USD)
//	rates "1 EUR = 0.86 GBP"            # optional, before the first at: conversion rates
//	load "shop.kiln"                    # definitions, relative to this file; several allowed
//	library "shop.kiln"                 # a shipped file
//	define { segment vip { spend_365d >= 500 } }   # inline definitions (may span lines)
//
//	at 2026-01-05 10:00                 # the clock; never goes back
//	  user 42 "Order Completed" {"revenue": 300}
//	  user 42 identify {"company": "Teahouse Ltd"}
//	  user 42 "Order Completed" {"revenue": 5} context {"traits": {"vat_id": "GB1"}}
//	  user 43 at 2025-12-31 23:00 "Order Completed" {"revenue": 50}   # happened then, arrives now
//	  user 44 "Order Completed" from "pos" store "york" {"revenue": 5}  # its source and store
//	  email ann@example.com "Email Opened"
//	  user 42 added to press_list       # removed from press_list
//
//	at 2027-01-05 10:00:00.001
//	  expect user 42 in high_value      # not in
//	  expect user 42 spend_365d = 300   # = != < <= > >=; numbers, "text", true, false, null
//	  expect user 42 spend_365d = 300.00 GBP   # an amount: the currency must match too
//	  expect high_value = [user 42, email ann@example.com]
//	  expect user 42 explain high_value contains "spend_365d >= 500"
//	  expect transition user 42 high_value exit at 2027-01-05 10:00
//	  expect transition user 42 high_value enter     # since the previous at line
//	  expect no transition user 42 vip               # since the previous at line
//	  expect-fail user 42 in vip        # known to fail today; fails the run once it holds
//
// # How a test runs
//
// Definitions are checked and compiled as the engine does (one set, no
// trait schema, the file's time zone as the workspace's). Each profile
// (named by its user id or email address; no identity resolution: one
// profile per name) gets an eval.State. Steps run in file order on one
// clock, as engine.evalBatch and the engine's timer do:
//
//   - before each line, every profile due at or before the clock is
//     advanced at its due instant (Result.NextDue), in time order, so a
//     window expiry is recorded at its exact instant (reason expiry);
//   - an event is received at the clock (its own timestamp if given): the
//     traits it carries are folded into the profile as engine.applyTraits
//     does (context.traits, then an identify's traits; null removes one),
//     then Program.Apply at the clock (reason event);
//   - a static list edit changes Profile.Static and calls ApplyProfile
//     (reason manual);
//   - after each of those, with population-relative conditions (rank of,
//     in top P%), the profile's values go into the test's
//     eval.Population, and the profiles it names are re-evaluated with
//     Program.Rerank at the same instant (reason rank), as the engine
//     does; the naive cross-check then ranks against every profile of
//     the test (Program.NaivePopulation).
//
// Expectations read the state as the engine holds it (Member,
// TraitValues; Explain at the clock) and the transitions recorded.
//
// Every step, and every expectation, is cross-checked against
// Program.Naive at that instant from the profile's events so far: a
// difference between the incremental evaluator and the naive one is
// reported (once, where it starts) as a Failure with Disagreement set.
//
// Segments with a freshness other than realtime are evaluated the same
// way; the server publishes their changes on their schedule, which tests
// do not model. Model traits (churn_risk, ...) are not computed: set them
// with identify to test segments that read them.
//
// Numbers are compared exactly, as decimals: a trait's value is read
// through its JSON form, whatever type the evaluator uses for numbers.
package ruletest
