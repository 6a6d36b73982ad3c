package eval

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteTree writes an explanation as `kiln explain` shows it: a line a
// condition, ✓ or ✗, its value and why, children indented below.
func WriteTree(w io.Writer, n *Node, indent string) {
	if n == nil {
		return
	}
	mark := "✗"
	if n.Holds {
		mark = "✓"
	}
	val := ""
	if n.Value != nil {
		b, _ := json.Marshal(n.Value)
		val = " = " + string(b)
	}
	fmt.Fprintf(w, "%s%s %s%s  (%s)\n", indent, mark, n.Condition, val, n.Why)
	for _, c := range n.Children {
		WriteTree(w, c, indent+"  ")
	}
}
