package rule

import "fmt"

// MaxDepth bounds how deeply a definition nests. In the text form each
// parenthesis and each not is a level; in the syntax tree each operand of
// and, or, not and arithmetic is one level below its operator.
//
// Hand-written definitions nest a handful of levels (the shipped library
// at most two) and a form builder adds a few more, so 200 leaves ample
// room for generated definitions. The bound exists because parsing,
// checking, formatting, compiling, evaluating and explaining all walk the
// tree recursively: without it a definition of a million parentheses
// overflowed the server's stack (issue 10). With it, every walk is at most
// a few hundred frames deep and a too-deep definition costs an error, not
// the process.
const MaxDepth = 200

// maxJSONDepth bounds the JSON form before it is decoded. A level of a
// definition takes at most two JSON levels (an operator's object and its
// "args" array), and the set, definition, aggregate, filter and value
// list around them take at most eight more, so no definition within
// MaxDepth reaches it.
const maxJSONDepth = 2*MaxDepth + 16

func tooDeep(pos Pos) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf("definition nested too deeply: more than %d levels of parentheses, not, and/or or arithmetic", MaxDepth)}
}

// checkDepth reports the first node of s nested deeper than MaxDepth. It
// stops descending there, so it is safe on any tree, however it was built.
// Definitions from JSON have no positions: the error then names the
// definition, as Check's errors do.
func checkDepth(s *Set) *Error {
	for _, d := range s.Defs {
		err := exprDepth(d.Value, 0)
		if err == nil {
			err = condDepth(d.Cond, 0)
		}
		if err != nil {
			if err.Line == 0 {
				err.Msg = d.Kind + " " + d.Name + ": " + err.Msg
			}
			return err
		}
	}
	return nil
}

func condDepth(c *Cond, level int) *Error {
	if c == nil {
		return nil
	}
	if level > MaxDepth {
		return tooDeep(c.Pos)
	}
	for _, a := range c.Args {
		if err := condDepth(a, level+1); err != nil {
			return err
		}
	}
	if err := exprDepth(c.Left, level); err != nil {
		return err
	}
	if err := exprDepth(c.Right, level); err != nil {
		return err
	}
	if c.Agg != nil {
		if err := filterDepth(c.Agg.Where, level); err != nil {
			return err
		}
	}
	for _, r := range []*EventRef{c.First, c.Then} {
		if r != nil {
			if err := filterDepth(r.Where, level); err != nil {
				return err
			}
		}
	}
	return nil
}

func exprDepth(e *Expr, level int) *Error {
	if e == nil {
		return nil
	}
	if level > MaxDepth {
		return tooDeep(e.Pos)
	}
	for _, a := range e.Args {
		if err := exprDepth(a, level+1); err != nil {
			return err
		}
	}
	if e.Agg != nil {
		return filterDepth(e.Agg.Where, level)
	}
	return nil
}

func filterDepth(f *Filter, level int) *Error {
	if f == nil {
		return nil
	}
	if level > MaxDepth {
		return tooDeep(f.Pos)
	}
	for _, a := range f.Args {
		if err := filterDepth(a, level+1); err != nil {
			return err
		}
	}
	for _, e := range []*Expr{f.Left, f.Right} {
		if err := exprDepth(e, level+1); err != nil {
			return err
		}
	}
	// A line-item condition's filter is one level down, as any(...) is
	// a parenthesis in the text form.
	return filterDepth(f.Where, level+1)
}

// CheckJSONDepth reports JSON nested deeper than any definition within
// MaxDepth can be, with the line and column in the JSON text, without
// decoding it. Callers that decode a request holding the JSON form check
// it first: encoding/json's own limit is 10,000 levels and its error names
// neither a position nor a limit the user can act on.
func CheckJSONDepth(data []byte) error {
	depth, line, col := 0, 1, 1
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxJSONDepth {
				return ErrorList{{Pos: Pos{line, col}, Msg: fmt.Sprintf(
					"definitions JSON nested too deeply: more than %d JSON levels, deeper than any definition within the limit of %d levels", maxJSONDepth, MaxDepth)}}
			}
		case c == '}' || c == ']':
			depth--
		}
		if c == '\n' {
			line, col = line+1, 1
		} else if c < 0x80 || c >= 0xC0 { // count runes, not UTF-8 continuation bytes
			col++
		}
	}
	return nil
}
