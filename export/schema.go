package export

import (
	"encoding/json"
	"fmt"
	"strings"
)

// BigQuerySchema returns the columns as a BigQuery JSON schema file, for
// `bq load --schema=FILE` (CSV, NDJSON; Parquet carries its own).
func BigQuerySchema(cols []Column) []byte {
	type field struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Mode string `json:"mode"`
	}
	fs := make([]field, len(cols))
	for i, c := range cols {
		fs[i] = field{c.Name, c.Type, "NULLABLE"}
	}
	b, _ := json.MarshalIndent(fs, "", "  ")
	return append(b, '\n')
}

// redshiftType maps a column type to Redshift's. Text is VARCHAR(65535),
// Redshift's longest: traits hold free text and JSON.
var redshiftType = map[string]string{TString: "VARCHAR(65535)", TInt: "BIGINT", TFloat: "DOUBLE PRECISION", TBool: "BOOLEAN", TTimestamp: "TIMESTAMP"}

// RedshiftDDL returns the CREATE TABLE statement for the columns, in
// order, as COPY ... FORMAT AS PARQUET and CSV need them.
func RedshiftDDL(table string, cols []Column) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", table)
	for i, c := range cols {
		sep := ","
		if i == len(cols)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s %s%s\n", c.Name, redshiftType[c.Type], sep)
	}
	b.WriteString(");\n")
	return b.String()
}
