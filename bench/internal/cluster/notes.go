package cluster

import (
	"bufio"
	"os"
	"strings"
)

// Note counts the warning and error lines of one process's log.
type Note struct {
	Process  string   `json:"process"`
	Warnings int      `json:"warnings"`
	Errors   int      `json:"errors"`
	Samples  []string `json:"samples,omitempty"` // up to 5 distinct messages
}

// LogNotes counts WARN and ERROR lines (slog's text and JSON forms) in
// every process's log.
func (c *Cluster) LogNotes() []Note {
	var out []Note
	for _, p := range c.Procs() {
		f, err := os.Open(p.Log)
		if err != nil {
			continue
		}
		n := Note{Process: p.ID}
		seen := map[string]bool{}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.Contains(line, "level=ERROR") || strings.Contains(line, `"level":"ERROR"`):
				n.Errors++
			case strings.Contains(line, "level=WARN") || strings.Contains(line, `"level":"WARN"`):
				n.Warnings++
			default:
				continue
			}
			msg := message(line)
			if !seen[msg] && len(n.Samples) < 5 {
				seen[msg] = true
				n.Samples = append(n.Samples, Short([]byte(line)))
			}
		}
		f.Close()
		out = append(out, n)
	}
	return out
}

// message is the msg= part of a slog text line, or the line.
func message(line string) string {
	if _, after, ok := strings.Cut(line, "msg="); ok {
		if i := strings.Index(after, " "); i > 0 && !strings.HasPrefix(after, `"`) {
			return after[:i]
		}
		if strings.HasPrefix(after, `"`) {
			if j := strings.Index(after[1:], `"`); j >= 0 {
				return after[:j+2]
			}
		}
		return after
	}
	return line
}
