// Package udiff renders unified diffs (the format of diff -u and git diff)
// of two texts, bounded in size. Entry point: Unified.
package udiff

import (
	"fmt"
	"strings"
)

// Context is the number of unchanged lines shown around each change.
const Context = 3

// maxCells bounds the line-matching table (lines(a) * lines(b)); beyond
// it the texts are shown as one replacement.
const maxCells = 4_000_000

// Unified returns the unified diff from a (named aName) to b (bName), ""
// when they are equal. At most maxLines lines of hunks are kept (0: no
// limit); the rest is summarised in a last line.
//
//	--- centre
//	+++ request
//	@@ -1,3 +1,3 @@
//	 app: demo
//	-version: v1
//	+version: v2
//	 replicas: 4
func Unified(aName, bName, a, b string, maxLines int) string {
	if a == b {
		return ""
	}
	x, y := lines(a), lines(b)
	ops := diff(x, y)
	var out []string
	for _, h := range hunks(ops) {
		out = append(out, h...)
	}
	if len(out) == 0 {
		return ""
	}
	if maxLines > 0 && len(out) > maxLines {
		out = append(out[:maxLines], fmt.Sprintf("... (%d more lines)", len(out)-maxLines))
	}
	return "--- " + aName + "\n+++ " + bName + "\n" + strings.Join(out, "\n") + "\n"
}

// Stat counts the added and removed lines between a and b.
func Stat(a, b string) (added, removed int) {
	for _, o := range diff(lines(a), lines(b)) {
		switch o.kind {
		case '+':
			added++
		case '-':
			removed++
		}
	}
	return added, removed
}

type op struct {
	kind byte // ' ', '-', '+'
	text string
	ai   int // line index in a (for ' ' and '-')
	bi   int // line index in b (for ' ' and '+')
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diff is a longest-common-subsequence line diff.
func diff(a, b []string) []op {
	// common prefix and suffix first: most edits touch a few lines
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var ops []op
	for i := 0; i < pre; i++ {
		ops = append(ops, op{' ', a[i], i, i})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	if n*m > maxCells {
		for i, s := range ma {
			ops = append(ops, op{'-', s, pre + i, 0})
		}
		for j, s := range mb {
			ops = append(ops, op{'+', s, 0, pre + j})
		}
	} else {
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, op{' ', ma[i], pre + i, pre + j})
				i, j = i+1, j+1
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				ops = append(ops, op{'-', ma[i], pre + i, 0})
				i++
			default:
				ops = append(ops, op{'+', mb[j], 0, pre + j})
				j++
			}
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, op{' ', a[len(a)-suf+k], len(a) - suf + k, len(b) - suf + k})
	}
	return ops
}

// hunks groups changes with Context lines around them, each with its
// "@@ -start,count +start,count @@" header.
func hunks(ops []op) [][]string {
	var out [][]string
	i := 0
	for i < len(ops) {
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(0, i-Context)
		end := i
		// extend while the next change is within 2*Context lines
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*Context {
				end = min(len(ops), end+Context)
				break
			}
			end = run
		}
		out = append(out, hunk(ops[start:end], ops, start))
		i = end
	}
	return out
}

func hunk(h []op, all []op, start int) []string {
	// line numbers: position of the first line of the hunk in a and b
	aStart, bStart := 0, 0
	for _, o := range all[:start] {
		if o.kind != '+' {
			aStart++
		}
		if o.kind != '-' {
			bStart++
		}
	}
	aCount, bCount := 0, 0
	body := make([]string, 0, len(h)+1)
	for _, o := range h {
		if o.kind != '+' {
			aCount++
		}
		if o.kind != '-' {
			bCount++
		}
		body = append(body, string(o.kind)+o.text)
	}
	header := fmt.Sprintf("@@ -%s +%s @@", rng(aStart, aCount), rng(bStart, bCount))
	return append([]string{header}, body...)
}

// rng is a hunk range: "start,count" (1-based), "start" when count is 1,
// and "start-1,0"-style when empty, as diff -u writes them.
func rng(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, count)
}
