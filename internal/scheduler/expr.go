package scheduler

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// ErrBadExpression is wrapped by every error Parse returns; check it with errors.Is. The
// concrete error is an *ExprError, which names the field and the reason.
var ErrBadExpression = errors.New("bad schedule expression")

// ExprError describes why an expression was refused. Its message reads
// `EXPR: field "FIELD": REASON`, or `EXPR: REASON` when no single field is at fault.
type ExprError struct {
	Expr   string // the expression as given
	Field  string // "second", "minute", "hour", "day-of-month", "month", "day-of-week", "year", or ""
	Reason string
}

func (e *ExprError) Error() string {
	if e.Field == "" {
		return e.Expr + ": " + e.Reason
	}
	return fmt.Sprintf("%s: field %q: %s", e.Expr, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBadExpression) true.
func (e *ExprError) Unwrap() error { return ErrBadExpression }

// Expr is a parsed schedule expression. Implementations are immutable and safe for concurrent
// use; Next is deterministic (it depends only on its argument), so every server computes the
// same slots.
type Expr interface {
	// Next returns the first fire time strictly after t, in loc (the schedule's time zone), or
	// the zero time and false if there is none (e.g. a cron year range that has passed).
	Next(t time.Time) (time.Time, bool)
	// String returns the canonical text; Parse(String()) yields an equal schedule.
	String() string
}

// MinEvery is the shortest interval @every accepts.
const MinEvery = time.Second

// searchYears bounds how far ahead a cron search looks when the expression has no year field.
// The Gregorian calendar repeats every 400 years, so a date pattern with no match in that window
// never matches.
const searchYears = 400

// Parse parses expr for time zone loc (nil means UTC). Accepted forms:
//
//	rate(N minute|minutes|hour|hours|day|days)   EventBridge; N >= 1; singular only for N == 1
//	cron(min hour dom month dow year)            EventBridge: ? in exactly one of dom/dow; L, W, #;
//	                                             dow 1-7 = SUN-SAT; year 1970-2199
//	min hour dom month dow                       standard cron; dow 0-7 (0 and 7 = SUN)
//	sec min hour dom month dow                   6 bare fields: seconds first
//	@every DURATION                              a Go duration, at least 1s
//	@hourly, @daily (= @midnight), @weekly, @monthly, @yearly (= @annually)
//
// Cron forms accept names (JAN-DEC, SUN-SAT, any case), lists, ranges and steps (*/5, 10-40/10,
// 5/15), and in the day fields L (last day; in dow alone: Saturday), LW (last weekday of the
// month), NW (the weekday nearest day N, never crossing the month), NL in dow (the last such
// weekday of the month) and N#K (the K-th such weekday, K 1-5). When both day fields are
// restricted and neither starts with * or is ?, a day matches either one (Vixie cron); otherwise
// it must match both.
//
// Time zones: cron forms and the @hourly family are evaluated on loc's wall clock. On a DST
// change a wall-clock time that does not exist that day (02:30 when clocks spring from 02:00 to
// 03:00) is skipped, not moved; a wall-clock time that happens twice (fall back) fires once, at
// its first occurrence. This is what EventBridge Scheduler does.
//
// rate() and @every are fixed intervals, independent of loc and of DST: the fire times are the
// multiples of the interval since the Unix epoch (1970-01-01T00:00:00Z), so every server computes
// the same slots whenever the schedule was created. rate(1 day) therefore fires at 00:00 UTC.
func Parse(expr string, loc *time.Location) (Expr, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := strings.TrimSpace(expr)
	switch {
	case s == "":
		return nil, &ExprError{Expr: expr, Reason: "empty expression"}
	case strings.HasPrefix(s, "rate("), strings.HasPrefix(s, "rate "):
		return parseRate(expr, s, loc)
	case strings.HasPrefix(s, "cron("), strings.HasPrefix(s, "cron "):
		inner, ok := strings.CutSuffix(strings.TrimSpace(strings.TrimPrefix(s, "cron")), ")")
		if !ok || !strings.HasPrefix(inner, "(") {
			return nil, &ExprError{Expr: expr, Reason: "expected cron(min hour day-of-month month day-of-week year)"}
		}
		return parseCron(expr, inner[1:], aws, loc)
	case strings.HasPrefix(s, "@"):
		return parseMacro(expr, s, loc)
	default:
		return parseCron(expr, s, standard, loc)
	}
}

// Slots lists the fire times of e in (after, until], at most max of them, in order.
func Slots(e Expr, after, until time.Time, max int) []time.Time {
	var out []time.Time
	for t := after; len(out) < max; {
		next, ok := e.Next(t)
		if !ok || next.After(until) {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}

// intervalExpr fires on the multiples of every since the Unix epoch.
type intervalExpr struct {
	text  string
	every time.Duration
	loc   *time.Location
}

func (e *intervalExpr) String() string { return e.text }

func (e *intervalExpr) Next(t time.Time) (time.Time, bool) {
	if e.every%time.Second == 0 {
		// Whole seconds: exact for any t. The multiple after floor(t) is also after t.
		n := int64(e.every / time.Second)
		k := floorDiv(t.Unix(), n) + 1
		return time.Unix(k*n, 0).In(e.loc), true
	}
	// Fractional intervals work in nanoseconds: exact for years 1678-2262.
	n := int64(e.every)
	k := floorDiv(t.UnixNano(), n) + 1
	return time.Unix(0, k*n).In(e.loc), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func parseRate(expr, s string, loc *time.Location) (Expr, error) {
	bad := func(format string, args ...any) error {
		return &ExprError{Expr: expr, Reason: fmt.Sprintf(format, args...)}
	}
	inner, ok := strings.CutSuffix(strings.TrimSpace(strings.TrimPrefix(s, "rate")), ")")
	if !ok || !strings.HasPrefix(inner, "(") {
		return nil, bad("expected rate(VALUE UNIT), e.g. rate(5 minutes)")
	}
	parts := strings.Fields(inner[1:])
	if len(parts) != 2 {
		return nil, bad("expected rate(VALUE UNIT), e.g. rate(5 minutes)")
	}
	if !isDigits(parts[0]) {
		return nil, bad("the value %q is not a whole number", parts[0])
	}
	n, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return nil, bad("the value %s is too large", parts[0])
	}
	if n < 1 {
		return nil, bad("the value must be at least 1")
	}
	unit := strings.ToLower(parts[1])
	var d time.Duration
	switch strings.TrimSuffix(unit, "s") {
	case "minute":
		d = time.Minute
	case "hour":
		d = time.Hour
	case "day":
		d = 24 * time.Hour
	default:
		return nil, bad("unknown unit %q: use minute(s), hour(s) or day(s)", parts[1])
	}
	plural := strings.HasSuffix(unit, "s")
	if n == 1 && plural {
		return nil, bad("use %q for a value of 1", strings.TrimSuffix(unit, "s"))
	}
	if n != 1 && !plural {
		return nil, bad("use %q for a value other than 1", unit+"s")
	}
	if n > math.MaxInt64/int64(d) {
		return nil, bad("the value %d is too large", n)
	}
	return &intervalExpr{text: fmt.Sprintf("rate(%d %s)", n, unit), every: time.Duration(n) * d, loc: loc}, nil
}

var macros = map[string]struct{ canonical, cron string }{
	"@hourly":   {"@hourly", "0 * * * *"},
	"@daily":    {"@daily", "0 0 * * *"},
	"@midnight": {"@daily", "0 0 * * *"},
	"@weekly":   {"@weekly", "0 0 * * 0"},
	"@monthly":  {"@monthly", "0 0 1 * *"},
	"@yearly":   {"@yearly", "0 0 1 1 *"},
	"@annually": {"@yearly", "0 0 1 1 *"},
}

func parseMacro(expr, s string, loc *time.Location) (Expr, error) {
	lower := strings.ToLower(s)
	if m, ok := macros[lower]; ok {
		e, err := parseCron(expr, m.cron, standard, loc)
		if err != nil {
			return nil, err
		}
		e.(*cronExpr).text = m.canonical
		return e, nil
	}
	rest, ok := strings.CutPrefix(lower, "@every")
	if !ok {
		return nil, &ExprError{Expr: expr, Reason: "unknown macro: use @every DURATION, @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"}
	}
	arg := strings.TrimSpace(rest)
	if arg == "" || rest[0] != ' ' && rest[0] != '\t' {
		return nil, &ExprError{Expr: expr, Reason: "expected @every DURATION, e.g. @every 30s"}
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		return nil, &ExprError{Expr: expr, Reason: fmt.Sprintf("%q is not a duration (e.g. 30s, 5m, 1h30m)", arg)}
	}
	if d < MinEvery {
		return nil, &ExprError{Expr: expr, Reason: "the interval must be at least 1s"}
	}
	return &intervalExpr{text: "@every " + d.String(), every: d, loc: loc}, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

type dialect int

const (
	standard dialect = iota // bare 5 or 6 fields (seconds first); dow 0-7
	aws                     // cron(...) of EventBridge: 6 fields ending with year; dow 1-7
)

type fieldSpec struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames  = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	stdDowNames = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
	awsDowNames = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

	secondSpec = fieldSpec{name: "second", min: 0, max: 59}
	minuteSpec = fieldSpec{name: "minute", min: 0, max: 59}
	hourSpec   = fieldSpec{name: "hour", min: 0, max: 23}
	domSpec    = fieldSpec{name: "day-of-month", min: 1, max: 31}
	monthSpec  = fieldSpec{name: "month", min: 1, max: 12, names: monthNames}
	stdDowSpec = fieldSpec{name: "day-of-week", min: 0, max: 7, names: stdDowNames}
	awsDowSpec = fieldSpec{name: "day-of-week", min: 1, max: 7, names: awsDowNames}
	yearSpec   = fieldSpec{name: "year", min: 1970, max: 2199}
)

type nthWeekday struct {
	day time.Weekday
	n   int // 1-5
}

// cronExpr matches wall-clock times in loc. The bit sets hold the allowed values: sec, min,
// hour by value, dom by day 1-31, month 1-12, dow by time.Weekday.
type cronExpr struct {
	text string
	loc  *time.Location

	sec, min, hour, dom, month, dow uint64
	years                           []bool // indexed by year - yearSpec.min; nil means every year
	lastYear                        int    // the last year in years

	domStar, dowStar bool // the field is ? or starts with *: the day fields combine with AND
	domLast          bool // L
	domLastWeekday   bool // LW
	domNearest       []int
	dowLast          []time.Weekday
	dowNth           []nthWeekday
}

func (c *cronExpr) String() string { return c.text }

func parseCron(expr, body string, d dialect, loc *time.Location) (Expr, error) {
	fields := strings.Fields(body)
	c := &cronExpr{loc: loc, sec: 1}
	var specs []fieldSpec
	switch {
	case d == aws && len(fields) == 6:
		specs = []fieldSpec{minuteSpec, hourSpec, domSpec, monthSpec, awsDowSpec, yearSpec}
	case d == aws:
		return nil, &ExprError{Expr: expr, Reason: fmt.Sprintf("expected 6 fields (minute hour day-of-month month day-of-week year), got %d", len(fields))}
	case len(fields) == 5:
		specs = []fieldSpec{minuteSpec, hourSpec, domSpec, monthSpec, stdDowSpec}
	case len(fields) == 6:
		specs = []fieldSpec{secondSpec, minuteSpec, hourSpec, domSpec, monthSpec, stdDowSpec}
	default:
		return nil, &ExprError{Expr: expr, Reason: fmt.Sprintf("expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got %d", len(fields))}
	}
	if d == aws && (fields[2] == "?") == (fields[4] == "?") {
		return nil, &ExprError{Expr: expr, Reason: "exactly one of day-of-month and day-of-week must be ?"}
	}

	for i, spec := range specs {
		text := strings.ToUpper(fields[i])
		fields[i] = text
		set, reason := c.parseField(text, spec, d)
		if reason != "" {
			if spec.name == "day-of-week" && len(fields) == 6 && d == standard && len(text) == 4 && isDigits(text) {
				reason += " (6 bare fields have seconds first; write EventBridge's form as cron(min hour day-of-month month day-of-week year))"
			}
			return nil, &ExprError{Expr: expr, Field: spec.name, Reason: reason}
		}
		star := text == "?" || strings.HasPrefix(text, "*")
		switch spec.name {
		case "second":
			c.sec = bitsOf(set)
		case "minute":
			c.min = bitsOf(set)
		case "hour":
			c.hour = bitsOf(set)
		case "day-of-month":
			c.dom, c.domStar = bitsOf(set), star
		case "month":
			c.month = bitsOf(set)
		case "day-of-week":
			c.dowStar = star
			for v, ok := range set {
				if ok {
					c.dow |= 1 << dowOf(v, d)
				}
			}
		case "year":
			if text != "*" {
				c.years = set[yearSpec.min:]
				for v := yearSpec.min; v <= yearSpec.max; v++ {
					if set[v] {
						c.lastYear = v
					}
				}
			}
		}
	}
	if d == aws {
		c.text = "cron(" + strings.Join(fields, " ") + ")"
	} else {
		c.text = strings.Join(fields, " ")
	}
	// A date pattern that never occurs (30 2 for February 30th) is refused rather than accepted
	// as a schedule that silently never fires. A year range in the past is accepted.
	if _, ok := c.Next(time.Date(yearSpec.min, 1, 1, 0, 0, 0, 0, loc).Add(-time.Second)); !ok {
		return nil, &ExprError{Expr: expr, Reason: "it never fires: no date matches the day-of-month, month, day-of-week and year fields together"}
	}
	return c, nil
}

func bitsOf(set []bool) uint64 {
	var b uint64
	for v, ok := range set {
		if ok {
			b |= 1 << v
		}
	}
	return b
}

// dowOf maps a day-of-week field value of dialect d to a time.Weekday.
func dowOf(v int, d dialect) time.Weekday {
	if d == aws {
		return time.Weekday(v - 1)
	}
	return time.Weekday(v % 7)
}

// parseField parses one field into set (indexed by value, sized spec.max+1), recording the
// day-field specials (L, W, #) on c. It returns a non-empty reason on error.
func (c *cronExpr) parseField(text string, spec fieldSpec, d dialect) ([]bool, string) {
	set := make([]bool, spec.max+1)
	isDom, isDow := spec.name == "day-of-month", spec.name == "day-of-week"
	if text == "?" {
		if !isDom && !isDow {
			return nil, "? is allowed only in day-of-month and day-of-week"
		}
		for v := spec.min; v <= spec.max; v++ {
			set[v] = true
		}
		return set, ""
	}
	for _, elem := range strings.Split(text, ",") {
		switch {
		case elem == "":
			return nil, "empty list element"
		case strings.Contains(elem, "?"):
			if !isDom && !isDow {
				return nil, "? is allowed only in day-of-month and day-of-week"
			}
			return nil, "? must be the whole field"
		case isDom && elem == "L":
			c.domLast = true
		case isDom && elem == "LW":
			c.domLastWeekday = true
		case isDom && strings.HasSuffix(elem, "W"):
			n, ok := strconv.Atoi(strings.TrimSuffix(elem, "W"))
			if ok != nil || n < 1 || n > 31 {
				return nil, fmt.Sprintf("%q: W needs a day 1-31 before it, e.g. 15W", elem)
			}
			c.domNearest = append(c.domNearest, n)
		case isDow && elem == "L":
			// L alone is the last day of the week: Saturday.
			if d == aws {
				set[7] = true
			} else {
				set[6] = true
			}
		case isDow && strings.HasSuffix(elem, "L") && !spec.hasName(elem):
			v, reason := spec.value(strings.TrimSuffix(elem, "L"))
			if reason != "" {
				return nil, fmt.Sprintf("%q: %s", elem, reason)
			}
			c.dowLast = append(c.dowLast, dowOf(v, d))
		case isDow && strings.Contains(elem, "#"):
			day, nth, _ := strings.Cut(elem, "#")
			v, reason := spec.value(day)
			if reason != "" {
				return nil, fmt.Sprintf("%q: %s", elem, reason)
			}
			n, err := strconv.Atoi(nth)
			if err != nil || n < 1 || n > 5 {
				return nil, fmt.Sprintf("%q: the number after # must be 1-5", elem)
			}
			c.dowNth = append(c.dowNth, nthWeekday{day: dowOf(v, d), n: n})
		default:
			if reason := spec.parseElem(elem, set); reason != "" {
				return nil, reason
			}
		}
	}
	return set, ""
}

func (f fieldSpec) hasName(s string) bool {
	_, ok := f.names[s]
	return ok
}

// parseElem adds one list element (*, N, N-M, with an optional /STEP) to set.
func (f fieldSpec) parseElem(elem string, set []bool) string {
	rng, stepText, hasStep := strings.Cut(elem, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 || !isDigits(stepText) {
			return fmt.Sprintf("step %q must be a whole number of at least 1", stepText)
		}
		step = n
	}
	var lo, hi int
	if rng == "*" {
		lo, hi = f.min, f.max
	} else if strings.HasPrefix(rng, "-") && isDigits(rng[1:]) {
		return fmt.Sprintf("%s is out of range %d-%d", rng, f.min, f.max)
	} else {
		a, b, isRange := strings.Cut(rng, "-")
		var reason string
		if lo, reason = f.value(a); reason != "" {
			return reason
		}
		hi = lo
		if isRange {
			if hi, reason = f.value(b); reason != "" {
				return reason
			}
			if hi < lo {
				return fmt.Sprintf("range %s runs backwards", rng)
			}
		} else if hasStep {
			hi = f.max
		}
	}
	for v := lo; v <= hi; v += step {
		set[v] = true
	}
	return ""
}

func (f fieldSpec) value(s string) (int, string) {
	if v, ok := f.names[s]; ok {
		return v, ""
	}
	if !isDigits(s) {
		if strings.ContainsAny(s, "LW#") && f.name != "day-of-month" && f.name != "day-of-week" {
			return 0, "L, W and # are allowed only in day-of-month and day-of-week"
		}
		if f.names != nil {
			return 0, fmt.Sprintf("%q is neither a number nor a name", s)
		}
		return 0, fmt.Sprintf("%q is not a number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Sprintf("%s is out of range %d-%d", s, f.min, f.max)
	}
	return n, ""
}

// Next implements Expr. It walks the civil dates of loc from t's date on, skipping months and
// years that cannot match, and returns the first matching wall-clock time that exists in loc
// and, at its first occurrence, is after t.
func (c *cronExpr) Next(t time.Time) (time.Time, bool) {
	lt := t.In(c.loc)
	y, m, d := lt.Date()
	h0, m0, s0 := lt.Clock()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	lastYear := y + searchYears
	if c.years != nil {
		lastYear = min(lastYear, c.lastYear)
	}
	for day.Year() <= lastYear {
		y, m, d = day.Date()
		switch {
		case !c.yearOK(y):
			day = time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC)
		case c.month&(1<<m) == 0:
			day = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		default:
			if c.dayOK(day) {
				if at, ok := c.firstInDay(day, h0, m0, s0, t); ok {
					return at, true
				}
			}
			day = day.AddDate(0, 0, 1)
		}
		h0, m0, s0 = 0, 0, 0
	}
	return time.Time{}, false
}

func (c *cronExpr) yearOK(y int) bool {
	if c.years == nil {
		return true
	}
	i := y - yearSpec.min
	return i >= 0 && i < len(c.years) && c.years[i]
}

func (c *cronExpr) dayOK(day time.Time) bool {
	y, m, d := day.Date()
	wd := day.Weekday()
	last := daysIn(y, m)

	domOK := c.dom&(1<<d) != 0 ||
		c.domLast && d == last ||
		c.domLastWeekday && d == nearestWeekday(last, y, m, last)
	for _, n := range c.domNearest {
		domOK = domOK || n <= last && d == nearestWeekday(n, y, m, last)
	}
	dowOK := c.dow&(1<<wd) != 0
	for _, w := range c.dowLast {
		dowOK = dowOK || wd == w && d+7 > last
	}
	for _, nth := range c.dowNth {
		dowOK = dowOK || wd == nth.day && (d-1)/7+1 == nth.n
	}
	if c.domStar || c.dowStar {
		return domOK && dowOK
	}
	return domOK || dowOK
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// nearestWeekday returns the Monday-to-Friday day nearest day n of the month, without leaving
// the month (1W on a Saturday is Monday the 3rd).
func nearestWeekday(n, y int, m time.Month, last int) int {
	switch time.Date(y, m, n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}

// firstInDay returns the earliest matching time on the civil date day, at or after the wall
// clock h0:m0:s0, that exists in loc and is after t.
func (c *cronExpr) firstInDay(day time.Time, h0, m0, s0 int, t time.Time) (time.Time, bool) {
	y, mo, d := day.Date()
	for h := nextBit(c.hour, h0); h >= 0; h = nextBit(c.hour, h+1) {
		mStart := 0
		if h == h0 {
			mStart = m0
		}
		for mi := nextBit(c.min, mStart); mi >= 0; mi = nextBit(c.min, mi+1) {
			sStart := 0
			if h == h0 && mi == m0 {
				sStart = s0
			}
			for s := nextBit(c.sec, sStart); s >= 0; s = nextBit(c.sec, s+1) {
				if at, ok := resolve(y, mo, d, h, mi, s, c.loc); ok && at.After(t) {
					return at, true
				}
			}
		}
	}
	return time.Time{}, false
}

// nextBit returns the lowest set bit of b at or above from, or -1.
func nextBit(b uint64, from int) int {
	if from >= 64 {
		return -1
	}
	b >>= uint(from)
	if b == 0 {
		return -1
	}
	return from + bits.TrailingZeros64(b)
}

// resolve returns the first instant at which loc's wall clock reads the given time, and false
// if the wall clock skips it (DST spring forward). It assumes offset changes in loc are at least
// 12 hours apart.
func resolve(y int, mo time.Month, d, h, mi, s int, loc *time.Location) (time.Time, bool) {
	wall := time.Date(y, mo, d, h, mi, s, 0, time.UTC).Unix()
	guess := time.Date(y, mo, d, h, mi, s, 0, loc)
	var best time.Time
	found := false
	for _, probe := range [...]time.Time{guess.Add(-12 * time.Hour), guess, guess.Add(12 * time.Hour)} {
		_, off := probe.Zone()
		at := time.Unix(wall-int64(off), 0).In(loc)
		if _, o := at.Zone(); o != off {
			continue
		}
		if !found || at.Before(best) {
			best, found = at, true
		}
	}
	return best, found
}
