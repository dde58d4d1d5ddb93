package properties

import "strings"

// Change sets (or, with Remove, removes) one key.
type Change struct {
	Key    string
	Value  string
	Remove bool
}

// Replace applies changes to a properties file line by line: a key the
// file has is replaced on its own logical line (continuation lines
// included) and every other line keeps its bytes; a key it lacks is
// appended, in the order of changes; Remove drops the key's lines. A key
// the file repeats keeps only its replaced line. Line endings (LF or
// CRLF) are kept.
func Replace(data []byte, changes []Change) []byte {
	byKey := map[string]Change{}
	for _, c := range changes {
		byKey[c.Key] = c
	}
	text := string(data)
	nl := "\n"
	if strings.Contains(text, "\r\n") {
		nl = "\r\n"
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	trailing := len(lines) > 0 && lines[len(lines)-1] == ""
	if trailing {
		lines = lines[:len(lines)-1]
	}
	done := map[string]bool{}
	var out []string
	for i := 0; i < len(lines); i++ {
		logical := []string{lines[i]}
		body := strings.TrimLeft(lines[i], " \t\f")
		if body == "" || body[0] == '#' || body[0] == '!' {
			out = append(out, lines[i])
			continue
		}
		joined := body
		for trailingBackslashes(joined)%2 == 1 && i+1 < len(lines) {
			joined = joined[:len(joined)-1]
			i++
			logical = append(logical, lines[i])
			joined += strings.TrimLeft(lines[i], " \t\f")
		}
		key, _, err := splitLine(joined)
		c, ok := byKey[key]
		if err != nil || !ok {
			out = append(out, logical...)
			continue
		}
		if c.Remove || done[key] {
			continue
		}
		done[key] = true
		out = append(out, Line(key, c.Value))
	}
	for _, c := range changes {
		if done[c.Key] || c.Remove {
			continue
		}
		done[c.Key] = true
		out = append(out, Line(c.Key, c.Value))
	}
	s := strings.Join(out, nl)
	if trailing || len(out) > 0 {
		s += nl
	}
	return []byte(s)
}

// Line renders one key=value line with Java's escapes.
func Line(key, value string) string { return escape(key, true) + "=" + escape(value, false) }
