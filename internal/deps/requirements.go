package deps

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrInvalidRequirements marks a requirements.txt a deploy refuses before
// any fetch: a line that is not a requirement, or one that names what a
// build may not reach (an editable install, a local path, an include, an
// index of its own, a URL to another host).
var ErrInvalidRequirements = errors.New("invalid requirements.txt")

// Policy says what a namespace's requirements may name beyond packages
// of the configured index.
type Policy struct {
	// URLHosts are the hosts a direct reference (NAME @ URL) may point
	// at; none by default.
	URLHosts []string
}

// requirement is NAME[extras] [specifiers] [; markers] [--hash=...]: the
// name as PEP 508 spells it, then anything pip parses further (pip
// reports what it cannot).
var requirement = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[A-Za-z0-9._,\s-]*\])?\s*(.*)$`)

// specifier is the rest of a requirement after its name and extras:
// version clauses, an optional marker, per-requirement hashes.
var specifier = regexp.MustCompile(`^((?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*(?:,\s*(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*)*)?(;[^#]*)?$`)

// hashOption is one --hash=ALGO:HEX of a requirement line.
var hashOption = regexp.MustCompile(`\s+--hash[= ](sha256|sha384|sha512):[0-9a-fA-F]+`)

// Parse checks a requirements.txt and returns its requirements, one per
// entry, comments and continuations removed: the text a build hands pip
// and the key its cache goes by. An empty file is no requirements.
func Parse(text []byte, pol Policy) ([]string, error) {
	lines := logicalLines(string(text))
	var out []string
	for _, l := range lines {
		req, err := parseLine(l.text, pol)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalidRequirements, l.number, err)
		}
		if req != "" {
			out = append(out, req)
		}
	}
	if len(out) > maxRequirements {
		return nil, fmt.Errorf("%w: %d requirements; at most %d", ErrInvalidRequirements, len(out), maxRequirements)
	}
	return out, nil
}

// maxRequirements bounds the entries of one requirements.txt.
const maxRequirements = 500

type logicalLine struct {
	number int // of its first physical line
	text   string
}

// logicalLines joins backslash continuations and drops comments (a #
// at the start or after whitespace) and blank lines.
func logicalLines(text string) []logicalLine {
	var out []logicalLine
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if cur.Len() == 0 {
			start = i + 1
		}
		line := stripComment(raw)
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, logicalLine{start, s})
		}
		cur.Reset()
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, logicalLine{start, s})
	}
	return out
}

func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// parseLine checks one logical line and returns it normalised.
func parseLine(l string, pol Policy) (string, error) {
	if strings.HasPrefix(l, "-") {
		return "", refuseOption(l)
	}
	if looksLikePath(l) {
		return "", fmt.Errorf("%q is a local path: a build sees only packages from the index", l)
	}
	if strings.Contains(l, "://") && !strings.Contains(l, "@") {
		return "", fmt.Errorf("%q is a URL: name the package instead (NAME @ URL, for a host the namespace allows)", l)
	}
	m := requirement.FindStringSubmatch(l)
	if m == nil {
		return "", fmt.Errorf("%q is not a requirement (NAME[extras] [version specifiers] [; markers])", l)
	}
	name, extras, rest := m[1], strings.Join(strings.Fields(m[2]), ""), strings.TrimSpace(m[3])
	var hashes []string
	for _, h := range hashOption.FindAllString(" "+rest, -1) {
		hashes = append(hashes, strings.TrimSpace(h))
	}
	rest = strings.TrimSpace(hashOption.ReplaceAllString(" "+rest, ""))
	if strings.HasPrefix(rest, "@") {
		if err := checkURL(strings.TrimSpace(rest[1:]), pol); err != nil {
			return "", err
		}
	} else if !specifier.MatchString(rest) {
		if strings.Contains(rest, "--") {
			return "", fmt.Errorf("%q: only --hash may follow a requirement", l)
		}
		return "", fmt.Errorf("%q: %q is not a version specifier (==, >=, <=, ~=, !=, <, > then a version, comma-separated, then an optional ; marker)", l, rest)
	}
	out := name + extras
	if rest != "" {
		if !strings.HasPrefix(rest, ";") && !strings.HasPrefix(rest, "@") {
			out += rest
		} else {
			out += " " + rest
		}
	}
	for _, h := range hashes {
		out += " " + h
	}
	return out, nil
}

// refuseOption explains why a pip option line is not allowed.
func refuseOption(l string) error {
	opt, _, _ := strings.Cut(l, " ")
	opt, _, _ = strings.Cut(opt, "=")
	switch opt {
	case "-e", "--editable":
		return fmt.Errorf("%q is an editable install: a layer is built once, read-only; name the package and its version", l)
	case "-r", "--requirement", "-c", "--constraint":
		return fmt.Errorf("%q includes another file: put every requirement in requirements.txt", l)
	case "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-index":
		return fmt.Errorf("%q chooses an index: the server or the namespace configures where packages come from (nimbus server --pip-index-url, --pip-find-links)", l)
	}
	return fmt.Errorf("%q: pip options are not allowed in requirements.txt (only --hash after a requirement)", l)
}

func looksLikePath(l string) bool {
	return strings.HasPrefix(l, ".") || strings.HasPrefix(l, "/") || strings.HasPrefix(l, "~") ||
		strings.HasPrefix(l, "file:") || !strings.Contains(l, "://") && strings.HasSuffix(l, ".whl") || !strings.Contains(l, "://") && (strings.HasSuffix(l, ".tar.gz") || strings.HasSuffix(l, ".zip"))
}

// checkURL allows a direct reference only to a host the policy names.
func checkURL(raw string, pol Policy) error {
	raw, _, _ = strings.Cut(raw, " ")
	raw = strings.TrimSuffix(raw, ";")
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	for _, h := range pol.URLHosts {
		if strings.EqualFold(u.Hostname(), h) {
			return nil
		}
	}
	return fmt.Errorf("a direct reference to %s: the namespace does not allow URLs to that host; name the package from the index instead", u.Hostname())
}
