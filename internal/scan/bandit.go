// Package scan owns code scanning at deploy: it runs Bandit (Debian's
// bandit package) over a package's Python when it is installed, and a
// policy decides whether findings only warn or block the deploy.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
)

// Policy modes.
const (
	ModeOff   = "off"
	ModeWarn  = "warn"
	ModeBlock = "block"
)

var severityRank = map[string]int{"LOW": 1, "MEDIUM": 2, "HIGH": 3}

// Policy says what findings do: nothing (off), get recorded (warn), or
// refuse the deploy when one is at BlockAt severity or above (block).
type Policy struct {
	Mode    string
	BlockAt string // LOW, MEDIUM or HIGH; default HIGH
}

// ParsePolicy reads "off", "warn", "block" or "block:MEDIUM".
func ParsePolicy(s string) (Policy, error) {
	mode, at, _ := strings.Cut(s, ":")
	p := Policy{Mode: mode, BlockAt: strings.ToUpper(at)}
	switch mode {
	case ModeOff, ModeWarn:
	case ModeBlock:
		if p.BlockAt == "" {
			p.BlockAt = "HIGH"
		}
		if severityRank[p.BlockAt] == 0 {
			return p, fmt.Errorf("scan policy %q: severity must be LOW, MEDIUM or HIGH", s)
		}
	default:
		return p, fmt.Errorf("scan policy %q: use off, warn, block or block:SEVERITY", s)
	}
	return p, nil
}

// Blocking returns the findings that make the policy refuse a deploy.
func (p Policy) Blocking(r *model.ScanReport) []model.Finding {
	if p.Mode != ModeBlock || r == nil {
		return nil
	}
	var out []model.Finding
	for _, f := range r.Findings {
		if severityRank[f.Severity] >= severityRank[p.BlockAt] {
			out = append(out, f)
		}
	}
	return out
}

// UnscannedTestID marks the finding made of a file Bandit could not scan
// (it could not parse it). It counts as HIGH: nothing in the file was
// checked, so a blocking policy refuses it as it would the worst finding.
const UnscannedTestID = "unscanned"

// TempPrefix begins the name of the directory a scan unpacks into.
const TempPrefix = "nimbus-scan-"

// Scanner runs Bandit.
type Scanner struct {
	Bandit  string        // path of the bandit program; "" looks it up on PATH
	Timeout time.Duration // default 60 s
	// TempDir receives each package unpacked for its scan, in a directory
	// named nimbus-scan-* (removed after it); "" is the system's
	// temporary directory.
	TempDir string
}

// Scan unpacks zip into a temporary directory and runs Bandit over it.
// Without Bandit it says so in the report instead of pretending to scan.
func (s Scanner) Scan(ctx context.Context, zip []byte) (*model.ScanReport, error) {
	bin := s.Bandit
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("bandit"); err != nil {
			return &model.ScanReport{Scanner: "bandit", Note: "not scanned: bandit is not installed on this server"}, nil
		}
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	tmp, err := os.MkdirTemp(s.TempDir, TempPrefix+"*")
	if err != nil {
		return nil, err
	}
	defer codepkg.RemoveTree(tmp)
	dir := filepath.Join(tmp, "pkg")
	if err := codepkg.Unpack(zip, dir, codepkg.DefaultLimits()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-r", "-f", "json", "-q", dir).Output()
	// bandit exits 1 when it finds something; its JSON is what counts.
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, fmt.Errorf("running bandit: %w", err)
	}
	var raw struct {
		Results []struct {
			TestID     string `json:"test_id"`
			Severity   string `json:"issue_severity"`
			Confidence string `json:"issue_confidence"`
			Text       string `json:"issue_text"`
			File       string `json:"filename"`
			Line       int    `json:"line_number"`
		} `json:"results"`
		// Errors are files Bandit could not scan (it could not parse
		// them): it reports no result for them, which is not "no
		// findings".
		Errors []struct {
			File   string `json:"filename"`
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("reading bandit's report: %w", err)
	}
	r := &model.ScanReport{Scanner: "bandit", Findings: []model.Finding{}}
	for _, x := range raw.Results {
		rel, _ := filepath.Rel(dir, x.File)
		r.Findings = append(r.Findings, model.Finding{TestID: x.TestID, Severity: x.Severity, Confidence: x.Confidence,
			Text: x.Text, File: rel, Line: x.Line})
	}
	for _, x := range raw.Errors {
		rel, err := filepath.Rel(dir, x.File)
		if err != nil {
			rel = x.File
		}
		r.Findings = append(r.Findings, model.Finding{TestID: UnscannedTestID, Severity: "HIGH", Confidence: "HIGH",
			Text: "Bandit could not scan this file, so nothing in it was checked: " + x.Reason, File: rel})
	}
	return r, nil
}
