package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// funcs are the helpers templates may call. None returns unescaped
// HTML: what they make is text, numbers or URLs that html/template
// escapes in context.
var funcs = template.FuncMap{
	"when":   when,
	"ago":    ago,
	"ms":     ms,
	"mb":     func(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) },
	"pct":    pct,
	"pretty": Pretty,
	"spark":  sparkPoints,
	"chart":  chartData,
	"link":   Link,
	"add":    func(a, b int) int { return a + b },
	"lines":  func(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") },
	"dur":    dur,
	"size":   size,
}

// dur renders a duration (any type whose kind is int64 nanoseconds,
// time.Duration or the stored model.Duration) in milliseconds.
func dur(d any) string {
	v := reflect.ValueOf(d)
	if v.Kind() != reflect.Int64 {
		return ""
	}
	return ms(float64(v.Int()) / 1e6)
}

// size renders a byte count in B, KB or MB.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

// when prints an absolute time in UTC, or "never" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago prints how long before now t was ("in 3m" for a future t).
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := time.Since(t); d >= 0 {
		return short(d) + " ago"
	} else {
		return "in " + short(-d)
	}
}

func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

// ms prints milliseconds with sensible precision.
func ms(v float64) string {
	switch {
	case v == 0:
		return "0 ms"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
}

// pct prints part/total as a percentage, "–" when total is 0.
func pct(part, total int64) string {
	if total == 0 {
		return "–"
	}
	return strconv.FormatFloat(100*float64(part)/float64(total), 'f', 1, 64) + "%"
}

// Pretty indents JSON for reading; anything else comes back as it was.
func Pretty(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// sparkPoints makes the points attribute of an SVG polyline 100 wide and
// 20 high from values (scaled to their maximum).
func sparkPoints(values []float64) string {
	if len(values) == 0 {
		return ""
	}
	top := 0.0
	for _, v := range values {
		top = math.Max(top, v)
	}
	var b strings.Builder
	for i, v := range values {
		x := 0.0
		if len(values) > 1 {
			x = 100 * float64(i) / float64(len(values)-1)
		}
		y := 19.0
		if top > 0 {
			y = 19 - 18*v/top
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	return strings.TrimSpace(b.String())
}

// Series is one line of a chart.
type Series struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"` // nil: no value at that x
}

// Chart is what a [data-chart] figure draws (web/src: charts).
type Chart struct {
	Title  string   `json:"-"`
	X      []int64  `json:"x"` // unix seconds
	Series []Series `json:"series"`
	Unit   string   `json:"unit"`
	Empty  bool     `json:"-"` // no value in any series
}

// chartData is the JSON a figure's data-chart attribute carries.
func chartData(c Chart) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Link adds query parameters (pairs of name, value; empty values are
// left out) to path.
func Link(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode()
}
