package gray

import (
	"regexp/syntax"
	"unicode/utf8"
)

// maxLiteralSet bounds the strings a regex may expand to for literalSet.
const maxLiteralSet = 64

// literalSet returns every string a regex matches (as a whole value) when
// that language is small and finite — "gold|platinum", "v[12]",
// "(eu|us)-west-1" — so the matcher can test membership instead of running
// the regex engine, and index the rule like an equality. ok is false for
// anything else (repetition, any-char, case folding, anchors, large sets).
func literalSet(re string) (set []string, ok bool) {
	p, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return nil, false
	}
	return expand(p.Simplify())
}

func expand(r *syntax.Regexp) ([]string, bool) {
	if r.Flags&syntax.FoldCase != 0 {
		return nil, false
	}
	switch r.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		return []string{string(r.Rune)}, true
	case syntax.OpCapture:
		return expand(r.Sub[0])
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(r.Rune); i += 2 {
			for c := r.Rune[i]; c <= r.Rune[i+1]; c++ {
				if len(out) >= maxLiteralSet || !utf8.ValidRune(c) {
					return nil, false
				}
				out = append(out, string(c))
			}
		}
		return out, len(out) > 0
	case syntax.OpAlternate:
		var out []string
		for _, s := range r.Sub {
			l, ok := expand(s)
			if !ok || len(out)+len(l) > maxLiteralSet {
				return nil, false
			}
			out = append(out, l...)
		}
		return dedup(out), true
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range r.Sub {
			l, ok := expand(s)
			if !ok || len(out)*len(l) > maxLiteralSet {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(l))
			for _, a := range out {
				for _, b := range l {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return dedup(out), true
	case syntax.OpQuest:
		l, ok := expand(r.Sub[0])
		if !ok || len(l)+1 > maxLiteralSet {
			return nil, false
		}
		return dedup(append(l, "")), true
	}
	return nil, false
}

func dedup(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := l[:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
