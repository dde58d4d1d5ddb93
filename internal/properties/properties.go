package properties

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Properties is a parsed Java properties file.
type Properties struct {
	// Keys in order of first appearance.
	Keys []string
	// Values by key (a repeated key keeps its last value, as in Java).
	Values map[string]string
}

// Parse parses a Java properties file by java.util.Properties.load's
// rules: # and ! comments, = : or whitespace separators, backslash line
// continuations and escapes including \uXXXX (surrogate pairs as two
// escapes). Errors name the line. A repeated key keeps its last value.
func Parse(data []byte) (Properties, error) {
	p := Properties{Values: map[string]string{}}
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// join continuation lines (an odd number of trailing backslashes)
		for trailingBackslashes(line)%2 == 1 {
			line = line[:len(line)-1]
			if i+1 >= len(lines) {
				break
			}
			i++
			line += strings.TrimLeft(lines[i], " \t\f")
		}
		key, value, err := splitLine(line)
		if err != nil {
			return p, fmt.Errorf("line %d: %v", start, err)
		}
		if _, ok := p.Values[key]; !ok {
			p.Keys = append(p.Keys, key)
		}
		p.Values[key] = value
	}
	return p, nil
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

func splitLine(line string) (string, string, error) {
	end := len(line)
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			end = i
			break
		}
	}
	rawKey := line[:end]
	rest := strings.TrimLeft(line[end:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	key, err := unescape(rawKey)
	if err != nil {
		return "", "", fmt.Errorf("key %q: %v", rawKey, err)
	}
	value, err := unescape(rest)
	if err != nil {
		return "", "", fmt.Errorf("value of %q: %v", key, err)
	}
	return key, value, nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", fmt.Errorf("malformed \\uxxxx escape")
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				return "", fmt.Errorf("malformed \\uxxxx escape %q", s[i-1:i+5])
			}
			r := rune(n)
			// a surrogate pair is two escapes
			if utf16.IsSurrogate(r) && i+11 <= len(s) && strings.HasPrefix(s[i+5:], `\u`) {
				if m, err := strconv.ParseUint(s[i+7:i+11], 16, 16); err == nil {
					if d := utf16.DecodeRune(r, rune(m)); d != utf8.RuneError {
						b.WriteRune(d)
						i += 10
						continue
					}
				}
			}
			b.WriteRune(r)
			i += 4
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// Canonical renders properties in a canonical form: sorted "key=value"
// lines with Java's escapes, so that the same set of properties has the
// same bytes (and checksum) however it was written or stored. Parse reads
// it back to the same values.
func Canonical(values map[string]string) []byte {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(escape(k, true))
		b.WriteByte('=')
		b.WriteString(escape(values[k], false))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func escape(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && (key || i == 0):
			b.WriteString(`\ `)
		case key && (r == '=' || r == ':'), (r == '#' || r == '!') && i == 0:
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
