package export

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Schedule writes exports of segments to a directory at an interval, for
// warehouses and BI tools that pick files up (docs/EXPORTS.md). Each run
// writes, per segment, in DIR/SEGMENT/:
//
//	members-STAMP.FORMAT   every current member (full)
//	members-latest.FORMAT  the same, at a fixed path for BI tools
//	changes-STAMP.FORMAT   entries and exits since the last run (only when
//	                       there were some; the first run has them all)
//	members.schema.json, changes.schema.json    BigQuery schemas
//	members.redshift.sql, changes.redshift.sql  Redshift tables
//	cursor                 the last transition exported, for the next run
//
// Files appear whole: each is written beside its name and renamed.
type Schedule struct {
	Dir     string
	Every   time.Duration
	Formats []string
	// Segments lists the segments to export (the live segments).
	Segments func() []string
	Source   Source
	Logger   *slog.Logger
	Now      func() time.Time // nil: time.Now
}

// Run exports at once and then every Every until ctx ends. A failed run
// is logged and tried again at the next.
func (s *Schedule) Run(ctx context.Context) error {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Error("scheduled export failed; trying again at the next run", "dir", s.Dir, "err", err, "next", s.Every)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// safeName keeps a segment's directory name inside Dir.
var safeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// RunOnce exports every segment once.
func (s *Schedule) RunOnce(ctx context.Context) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	stamp := now().UTC().Format("20060102T150405.000Z")
	for _, seg := range s.Segments() {
		dir := filepath.Join(s.Dir, strings.TrimLeft(safeName.ReplaceAllString(seg, "_"), "."))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("export directory: %w", err)
		}
		cursor, err := readCursor(filepath.Join(dir, "cursor"))
		if err != nil {
			return err
		}
		upTo := int64(0)
		for _, f := range s.Formats {
			full := filepath.Join(dir, "members-"+stamp+"."+f)
			res, err := writeExport(full, true, func(w io.Writer) (Result, error) {
				return Write(ctx, s.Source, Options{Segment: seg, Format: f}, w)
			})
			if err != nil {
				return err
			}
			if err := copyFile(full, filepath.Join(dir, "members-latest."+f)); err != nil {
				return err
			}
			if err := writeSchemas(dir, "members", seg, res.Columns); err != nil {
				return err
			}
			// Every format holds the same range: the first fixes its end.
			res, err = writeExport(filepath.Join(dir, "changes-"+stamp+"."+f), false, func(w io.Writer) (Result, error) {
				return Write(ctx, s.Source, Options{Segment: seg, Format: f, Incremental: true, After: cursor, UpTo: upTo}, w)
			})
			if err != nil {
				return err
			}
			if upTo == 0 {
				upTo = res.Cursor
			}
			if err := writeSchemas(dir, "changes", seg, res.Columns); err != nil {
				return err
			}
		}
		if upTo > cursor {
			if err := writeFile(filepath.Join(dir, "cursor"), []byte(strconv.FormatInt(upTo, 10)+"\n")); err != nil {
				return err
			}
		}
		s.Logger.Info("exported segment", "segment", seg, "dir", dir, "cursor", max(upTo, cursor))
	}
	return nil
}

func readCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("export cursor %s: %q is not a transition id (delete the file to export every change again)", path, b)
	}
	return n, nil
}

func writeSchemas(dir, kind, seg string, cols []Column) error {
	if err := writeFile(filepath.Join(dir, kind+".schema.json"), BigQuerySchema(cols)); err != nil {
		return err
	}
	table := "kiln_" + strings.ToLower(safeName.ReplaceAllString(seg, "_")) + "_" + kind
	return writeFile(filepath.Join(dir, kind+".redshift.sql"), []byte(RedshiftDDL(table, cols)))
}

// writeExport writes an export to path through a temporary file; without
// keepEmpty it leaves no file when the export has no rows.
func writeExport(path string, keepEmpty bool, write func(io.Writer) (Result, error)) (Result, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return Result{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	res, err := write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || res.Rows == 0 && !keepEmpty {
		os.Remove(tmp)
		return res, err
	}
	return res, os.Rename(tmp, path)
}

// copyFile copies src over dst whole.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

// writeFile replaces path whole: readers see the old file or the new one.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
