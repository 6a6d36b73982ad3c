package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// TimeLayout is how CSV and NDJSON write timestamps: UTC, microseconds,
// no zone suffix, the form BigQuery, Redshift (TIMEFORMAT 'auto'),
// Tableau and Qlik all read as a timestamp.
const TimeLayout = "2006-01-02 15:04:05.000000"

// text formats a cell for CSV and NDJSON strings.
func text(c cell) string {
	switch c.kind {
	case 's', 'n':
		return c.s
	case 'i':
		if c.s != "" {
			return c.s
		}
		return strconv.FormatInt(c.i, 10)
	case 'b':
		return strconv.FormatBool(c.b)
	case 't':
		return c.t.UTC().Format(TimeLayout)
	}
	return ""
}

// EscapeFormula defuses a text cell a spreadsheet would run as a formula
// (CSV injection: "=HYPERLINK(...)", "=cmd|' /C calc'!A0", "@SUM(...)"):
// a value starting with = + - @, tab or carriage return gets a leading
// single quote, which spreadsheets show as text. Only text is escaped:
// numbers Kiln writes itself (-5) stay numbers.
func EscapeFormula(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

type csvEncoder struct {
	w   *csv.Writer
	rec []string
}

func newCSV(w io.Writer, cols []Column) (encoder, error) {
	e := &csvEncoder{w: csv.NewWriter(w), rec: make([]string, len(cols))}
	for i, c := range cols {
		e.rec[i] = c.Name
	}
	return e, e.w.Write(e.rec)
}

func (e *csvEncoder) write(cells []cell) error {
	for i, c := range cells {
		e.rec[i] = text(c)
		if c.kind == 's' {
			e.rec[i] = EscapeFormula(e.rec[i])
		}
	}
	return e.w.Write(e.rec)
}

func (e *csvEncoder) close() error {
	e.w.Flush()
	return e.w.Error()
}

type ndjsonEncoder struct {
	w    *bufio.Writer
	cols []Column
	buf  []byte
}

func newNDJSON(w io.Writer, cols []Column) encoder {
	return &ndjsonEncoder{w: bufio.NewWriter(w), cols: cols}
}

// write writes one flat object, columns in order; numbers are written as
// their exact text, nulls as null.
func (e *ndjsonEncoder) write(cells []cell) error {
	b := append(e.buf[:0], '{')
	for i, c := range cells {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, e.cols[i].Name) // names are [a-z0-9_]
		b = append(b, ':')
		switch c.kind {
		case 0:
			b = append(b, "null"...)
		case 'n', 'i', 'b':
			b = append(b, text(c)...)
		default:
			s, _ := json.Marshal(text(c))
			b = append(b, s...)
		}
	}
	b = append(b, '}', '\n')
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

func (e *ndjsonEncoder) close() error { return e.w.Flush() }

type parquetEncoder struct {
	w     *parquet.Writer
	order []int // schema leaf i holds our column order[i]
	row   parquet.Row
}

// newParquet writes a Parquet file (Snappy) with every column optional:
// strings as STRING, integers INT64, fractions DOUBLE, booleans BOOLEAN,
// times TIMESTAMP(MICROS, UTC).
func newParquet(w io.Writer, cols []Column) (*parquetEncoder, error) {
	g := parquet.Group{}
	for _, c := range cols {
		var n parquet.Node
		switch c.Type {
		case TInt:
			n = parquet.Int(64)
		case TFloat:
			n = parquet.Leaf(parquet.DoubleType)
		case TBool:
			n = parquet.Leaf(parquet.BooleanType)
		case TTimestamp:
			n = parquet.TimestampAdjusted(parquet.Microsecond, true)
		default:
			n = parquet.String()
		}
		g[c.Name] = parquet.Optional(n)
	}
	schema := parquet.NewSchema("kiln_export", g)
	byName := map[string]int{}
	for i, c := range cols {
		byName[c.Name] = i
	}
	e := &parquetEncoder{w: parquet.NewWriter(w, schema, parquet.Compression(&parquet.Snappy))}
	for _, path := range schema.Columns() {
		e.order = append(e.order, byName[path[0]])
	}
	e.row = make(parquet.Row, len(e.order))
	return e, nil
}

// fileColumns returns cols in the file's order, and makes write take
// cells in that order too.
func (e *parquetEncoder) fileColumns(cols []Column) []Column {
	out := make([]Column, len(e.order))
	for leaf, i := range e.order {
		out[leaf] = cols[i]
	}
	e.order = nil
	return out
}

func (e *parquetEncoder) write(cells []cell) error {
	for leaf, c := range cells {
		var v parquet.Value
		switch c.kind {
		case 's':
			v = parquet.ByteArrayValue([]byte(c.s))
		case 'i':
			v = parquet.Int64Value(c.i)
		case 'n':
			v = parquet.DoubleValue(c.f)
		case 'b':
			v = parquet.BooleanValue(c.b)
		case 't':
			v = parquet.Int64Value(c.t.UnixMicro())
		}
		def := 1
		if c.kind == 0 {
			def = 0
		}
		e.row[leaf] = v.Level(0, def, leaf)
	}
	_, err := e.w.WriteRows([]parquet.Row{e.row})
	return err
}

func (e *parquetEncoder) close() error { return e.w.Close() }
