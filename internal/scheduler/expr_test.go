package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/adhocore/gronx"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s not available: %v", name, err)
	}
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return at
}

func TestNextFireTimes(t *testing.T) {
	cases := []struct {
		name string
		expr string
		tz   string // "" is UTC
		from string
		want []string // successive fire times
		ends bool     // after want, Next reports no further fire time
	}{
		// rate() and @every: multiples of the interval since the Unix epoch.
		{"rate of five minutes fires on the five-minute marks since the epoch", "rate(5 minutes)", "", "2026-01-15T10:02:30Z",
			[]string{"2026-01-15T10:05:00Z", "2026-01-15T10:10:00Z"}, false},
		{"rate of one minute fires strictly after a slot", "rate(1 minute)", "", "2026-01-15T10:00:00Z",
			[]string{"2026-01-15T10:01:00Z", "2026-01-15T10:02:00Z"}, false},
		{"rate of two hours fires on even UTC hours", "rate(2 hours)", "", "2026-01-15T01:00:00Z",
			[]string{"2026-01-15T02:00:00Z", "2026-01-15T04:00:00Z"}, false},
		{"rate of three days counts whole days from the epoch", "rate(3 days)", "", "2026-01-15T00:00:01Z",
			[]string{"2026-01-16T00:00:00Z", "2026-01-19T00:00:00Z"}, false},
		{"rate of one day fires at midnight UTC whatever the time zone", "rate(1 day)", "America/New_York", "2026-01-15T12:00:00-05:00",
			[]string{"2026-01-15T19:00:00-05:00", "2026-01-16T19:00:00-05:00"}, false},
		{"rate of one hour keeps its interval across the spring-forward gap", "rate(1 hour)", "America/New_York", "2026-03-08T01:30:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}, false},
		{"every second fires on each whole second", "@every 1s", "", "2026-01-15T10:00:00.5Z",
			[]string{"2026-01-15T10:00:01Z", "2026-01-15T10:00:02Z"}, false},
		{"every seven minutes is anchored to the epoch, not to the hour", "@every 7m", "", "2026-01-15T10:00:00Z",
			[]string{"2026-01-15T10:02:00Z", "2026-01-15T10:09:00Z"}, false},
		{"every one and a half seconds keeps the fraction", "@every 1.5s", "", "2026-01-15T10:00:00Z",
			[]string{"2026-01-15T10:00:01.5Z", "2026-01-15T10:00:03Z"}, false},

		// Macros.
		{"hourly fires on the hour", "@hourly", "", "2026-01-15T10:15:00Z",
			[]string{"2026-01-15T11:00:00Z", "2026-01-15T12:00:00Z"}, false},
		{"daily fires at local midnight in Berlin", "@daily", "Europe/Berlin", "2026-01-15T10:00:00+01:00",
			[]string{"2026-01-16T00:00:00+01:00", "2026-01-17T00:00:00+01:00"}, false},
		{"midnight is daily", "@midnight", "", "2026-01-15T10:00:00Z",
			[]string{"2026-01-16T00:00:00Z", "2026-01-17T00:00:00Z"}, false},
		{"weekly fires on Sunday at midnight", "@weekly", "", "2026-01-15T10:00:00Z",
			[]string{"2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"}, false},
		{"monthly fires on the first at midnight", "@monthly", "", "2026-01-15T10:00:00Z",
			[]string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}, false},
		{"yearly fires on New Year's Day", "@yearly", "", "2026-01-15T10:00:00Z",
			[]string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}, false},
		{"annually is yearly", "@annually", "", "2026-01-15T10:00:00Z",
			[]string{"2027-01-01T00:00:00Z"}, false},

		// Standard 5-field and seconds-first 6-field cron.
		{"weekday mornings at half past nine skip the weekend", "30 9 * * 1-5", "", "2026-01-16T10:00:00Z",
			[]string{"2026-01-19T09:30:00Z", "2026-01-20T09:30:00Z"}, false},
		{"every fifteen minutes", "*/15 * * * *", "", "2026-01-15T10:07:00Z",
			[]string{"2026-01-15T10:15:00Z", "2026-01-15T10:30:00Z"}, false},
		{"restricted day-of-month and day-of-week match either one", "0 0 13 * 5", "", "2026-04-11T00:00:00Z",
			[]string{"2026-04-13T00:00:00Z", "2026-04-17T00:00:00Z"}, false},
		{"a day-of-week starting with a star makes the day fields match both", "0 0 1-7 * */7", "", "2026-01-15T00:00:00Z",
			[]string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}, false},
		{"month and weekday names in any case", "0 12 * jan,JUL Mon", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-19T12:00:00Z", "2026-01-26T12:00:00Z"}, false},
		{"seven is Sunday in standard cron", "0 0 * * 7", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"}, false},
		{"standard cron accepts L for the last day of the month", "0 0 L * *", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"}, false},
		{"six bare fields put seconds first", "*/10 * * * * *", "", "2026-01-15T10:00:05Z",
			[]string{"2026-01-15T10:00:10Z", "2026-01-15T10:00:20Z"}, false},
		{"a seconds-first daily time fires at its second", "30 0 12 * * *", "", "2026-01-15T12:00:00Z",
			[]string{"2026-01-15T12:00:30Z", "2026-01-16T12:00:30Z"}, false},

		// EventBridge cron(min hour dom month dow year).
		{"AWS cron fires daily at noon", "cron(0 12 * * ? *)", "", "2026-01-15T12:00:00Z",
			[]string{"2026-01-16T12:00:00Z", "2026-01-17T12:00:00Z"}, false},
		{"AWS weekday names skip the weekend", "cron(0 10 ? * MON-FRI *)", "", "2026-01-16T10:00:00Z",
			[]string{"2026-01-19T10:00:00Z", "2026-01-20T10:00:00Z"}, false},
		{"AWS weekday numbers 2-6 are Monday to Friday", "cron(0 10 ? * 2-6 *)", "", "2026-01-16T10:00:00Z",
			[]string{"2026-01-19T10:00:00Z", "2026-01-20T10:00:00Z"}, false},
		{"AWS weekday 1 is Sunday", "cron(0 0 ? * 1 *)", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"}, false},
		{"AWS L is the last day of each month", "cron(0 0 L * ? *)", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"}, false},
		{"AWS L in February finds the leap day", "cron(0 0 L 2 ? *)", "", "2027-03-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"}, false},
		{"AWS 15W moves a Sunday 15th to Monday the 16th", "cron(0 9 15W * ? *)", "", "2026-01-16T00:00:00Z",
			[]string{"2026-02-16T09:00:00Z", "2026-03-16T09:00:00Z", "2026-04-15T09:00:00Z"}, false},
		{"AWS 15W moves a Saturday 15th to Friday the 14th", "cron(0 9 15W 8 ? *)", "", "2026-01-01T00:00:00Z",
			[]string{"2026-08-14T09:00:00Z"}, false},
		{"AWS 1W on a Saturday moves forward to Monday the 3rd, not back into July", "cron(0 9 1W 8 ? 2026)", "", "2026-01-01T00:00:00Z",
			[]string{"2026-08-03T09:00:00Z"}, true},
		{"AWS 31W skips months without a 31st", "cron(0 0 31W * ? 2026)", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-30T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-29T00:00:00Z"}, false},
		{"AWS LW is the last weekday of the month", "cron(0 0 LW 1 ? 2026)", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-30T00:00:00Z"}, true},
		{"AWS 2#1 is the first Monday", "cron(0 8 ? * 2#1 *)", "", "2026-01-15T00:00:00Z",
			[]string{"2026-02-02T08:00:00Z", "2026-03-02T08:00:00Z"}, false},
		{"AWS MON#2 is the second Monday", "cron(0 8 ? * MON#2 *)", "", "2026-01-15T00:00:00Z",
			[]string{"2026-02-09T08:00:00Z", "2026-03-09T08:00:00Z"}, false},
		{"AWS 6L is the last Friday", "cron(15 10 ? * 6L 2026)", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-30T10:15:00Z", "2026-02-27T10:15:00Z"}, false},
		{"AWS year range stops after its last year", "cron(0 0 1 1 ? 2027-2028)", "", "2026-01-15T00:00:00Z",
			[]string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}, true},
		{"AWS year in the past has no fire time", "cron(0 0 * * ? 2020)", "", "2026-01-15T00:00:00Z",
			nil, true},

		// DST: a wall-clock time missing that day is skipped; a repeated one fires once.
		{"New York 02:30 daily skips the spring-forward day", "cron(30 2 * * ? *)", "America/New_York", "2026-03-07T03:00:00-05:00",
			[]string{"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}, false},
		{"New York 02:30 in standard cron skips the spring-forward day", "30 2 * * *", "America/New_York", "2026-03-07T03:00:00-05:00",
			[]string{"2026-03-09T02:30:00-04:00"}, false},
		{"New York hourly skips the missing 02:00", "0 * * * *", "America/New_York", "2026-03-08T00:30:00-05:00",
			[]string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}, false},
		{"New York 01:30 daily fires once on the fall-back day", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}, false},
		{"New York 01:30 does not fire again in the repeated hour", "cron(30 1 * * ? *)", "America/New_York", "2026-11-01T01:10:00-05:00",
			[]string{"2026-11-02T01:30:00-05:00"}, false},
		{"New York half-hourly does not repeat the fall-back hour", "*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00"}, false},
		{"New York daily keeps local midnight across spring forward", "@daily", "America/New_York", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"}, false},
		{"Berlin 02:30 daily skips the spring-forward day", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
			[]string{"2026-03-30T02:30:00+02:00"}, false},
		{"Berlin 02:30 daily fires once on the fall-back day", "cron(30 2 * * ? *)", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loc := time.UTC
			if tc.tz != "" {
				loc = mustLoad(t, tc.tz)
			}
			e, err := Parse(tc.expr, loc)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.expr, err)
			}
			at := mustTime(t, tc.from)
			for i, w := range tc.want {
				next, ok := e.Next(at)
				want := mustTime(t, w)
				if !ok || !next.Equal(want) {
					t.Fatalf("fire %d after %s: got %s, %v; want %s", i+1, at.In(loc).Format(time.RFC3339Nano), next.Format(time.RFC3339Nano), ok, w)
				}
				if next.Location() != loc {
					t.Fatalf("fire %d is in %s, want %s", i+1, next.Location(), loc)
				}
				at = next
			}
			if next, ok := e.Next(at); ok == tc.ends {
				t.Fatalf("after %s: got %s, %v; want ok=%v", at.Format(time.RFC3339), next.Format(time.RFC3339), ok, !tc.ends)
			}
			// The canonical text parses back to the same schedule.
			again, err := Parse(e.String(), loc)
			if err != nil {
				t.Fatalf("Parse(String() = %q): %v", e.String(), err)
			}
			if again.String() != e.String() {
				t.Fatalf("String() is not canonical: %q then %q", e.String(), again.String())
			}
		})
	}
}

func TestCanonicalText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"midnight becomes daily", "@midnight", "@daily"},
		{"annually becomes yearly", "@ANNUALLY", "@yearly"},
		{"an every duration is normalised", "@every 90s", "@every 1m30s"},
		{"rate units are lower case", "rate(5 Minutes)", "rate(5 minutes)"},
		{"cron names are upper case", "cron(0 10 ? * mon-fri *)", "cron(0 10 ? * MON-FRI *)"},
		{"extra spaces collapse", "  0   12 * *  *  ", "0 12 * * *"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseRefusesBadExpressions(t *testing.T) {
	cases := []struct {
		name  string
		expr  string
		field string // ExprError.Field
		want  string // a substring of the message
	}{
		{"an empty expression", "  ", "", "empty expression"},
		{"a rate of zero", "rate(0 minutes)", "", "rate(0 minutes): the value must be at least 1"},
		{"a singular unit for more than one", "rate(5 minute)", "", `rate(5 minute): use "minutes" for a value other than 1`},
		{"a plural unit for one", "rate(1 hours)", "", `use "hour" for a value of 1`},
		{"an unknown rate unit", "rate(5 weeks)", "", `unknown unit "weeks"`},
		{"a rate value in words", "rate(five minutes)", "", `the value "five" is not a whole number`},
		{"a rate without a space", "rate(5minutes)", "", "expected rate(VALUE UNIT)"},
		{"a rate that overflows", "rate(99999999999 days)", "", "is too large"},
		{"every half a second", "@every 500ms", "", "@every 500ms: the interval must be at least 1s"},
		{"every with no duration", "@every", "", "expected @every DURATION"},
		{"every with a word", "@every soon", "", `"soon" is not a duration`},
		{"an unknown macro", "@fortnightly", "", "unknown macro"},
		{"an AWS hour out of range", "cron(0 25 * * ? *)", "hour", `cron(0 25 * * ? *): field "hour": 25 is out of range 0-23`},
		{"AWS cron with no ?", "cron(0 12 * * MON *)", "", "cron(0 12 * * MON *): exactly one of day-of-month and day-of-week must be ?"},
		{"AWS cron with two ?", "cron(0 12 ? * ? *)", "", "exactly one of day-of-month and day-of-week must be ?"},
		{"AWS cron without the year", "cron(0 12 * * ?)", "", "expected 6 fields (minute hour day-of-month month day-of-week year), got 5"},
		{"AWS cron without the closing parenthesis", "cron(0 12 * * ? *", "", "expected cron("},
		{"an AWS year out of range", "cron(0 12 * * ? 2300)", "year", `field "year": 2300 is out of range 1970-2199`},
		{"an AWS weekday zero", "cron(0 12 ? * 0 *)", "day-of-week", `field "day-of-week": 0 is out of range 1-7`},
		{"a sixth weekday of the month", "cron(0 12 ? * 2#6 *)", "day-of-week", "the number after # must be 1-5"},
		{"a nearest weekday past the 31st", "cron(0 12 32W * ? *)", "day-of-month", "W needs a day 1-31 before it"},
		{"a minute out of range", "61 * * * *", "minute", `field "minute": 61 is out of range 0-59`},
		{"a second out of range", "60 * * * * *", "second", `field "second": 60 is out of range 0-59`},
		{"seven bare fields", "* * * * * * *", "", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got 7"},
		{"an AWS expression written without cron()", "0 12 1 * * 2026", "day-of-week", "6 bare fields have seconds first"},
		{"a date that never occurs", "0 0 30 2 *", "", "never fires"},
		{"a step of zero", "*/0 * * * *", "minute", `step "0" must be a whole number of at least 1`},
		{"a backwards range", "5-2 * * * *", "minute", "range 5-2 runs backwards"},
		{"an unknown month name", "0 0 * FOO *", "month", `"FOO" is neither a number nor a name`},
		{"L in the hour field", "0 L * * *", "hour", "L, W and # are allowed only in day-of-month and day-of-week"},
		{"? in the minute field", "? * * * *", "minute", "? is allowed only in day-of-month and day-of-week"},
		{"? inside a list", "0 0 1,? * *", "day-of-month", "? must be the whole field"},
		{"an empty list element", "0 0 1,,2 * *", "day-of-month", "empty list element"},
		{"a negative number", "0 -1 * * *", "hour", "-1 is out of range 0-23"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.expr, time.UTC)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tc.expr, e)
			}
			if !errors.Is(err, ErrBadExpression) {
				t.Fatalf("error %v does not wrap ErrBadExpression", err)
			}
			var ee *ExprError
			if !errors.As(err, &ee) || ee.Field != tc.field {
				t.Fatalf("error %v: field %q, want %q", err, ee.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSlots(t *testing.T) {
	rate, err := Parse("rate(5 minutes)", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	after, until := mustTime(t, "2026-01-15T10:00:00Z"), mustTime(t, "2026-01-15T10:30:00Z")
	cases := []struct {
		name        string
		e           Expr
		after       time.Time
		until       time.Time
		max         int
		first, last string
		n           int
	}{
		{"slots exclude after and include until", rate, after, until, 100, "2026-01-15T10:05:00Z", "2026-01-15T10:30:00Z", 6},
		{"slots stop at max", rate, after, until, 2, "2026-01-15T10:05:00Z", "2026-01-15T10:10:00Z", 2},
		{"an empty window has no slots", rate, after, after.Add(4 * time.Minute), 100, "", "", 0},
		{"zero max has no slots", rate, after, until, 0, "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Slots(tc.e, tc.after, tc.until, tc.max)
			if len(got) != tc.n {
				t.Fatalf("got %d slots %v, want %d", len(got), got, tc.n)
			}
			if tc.n > 0 && (!got[0].Equal(mustTime(t, tc.first)) || !got[tc.n-1].Equal(mustTime(t, tc.last))) {
				t.Fatalf("got %v, want %s to %s", got, tc.first, tc.last)
			}
		})
	}
	t.Run("slots of a finished year range stop", func(t *testing.T) {
		e, err := Parse("cron(0 0 1 1 ? 2027-2028)", time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		got := Slots(e, after, after.AddDate(100, 0, 0), 100)
		if len(got) != 2 {
			t.Fatalf("got %v, want the two New Year's Days", got)
		}
	})
}

// TestAgreesWithGronx checks our cron engine against gronx on expressions and a time zone where
// the two share their semantics (UTC, so no DST; no bare 6 fields ending in a year).
func TestAgreesWithGronx(t *testing.T) {
	exprs := []string{
		"*/15 * * * *", "30 9 * * 1-5", "0 0 L * *", "0 0 * * 5L", "0 0 * * 1#2", "0 9 15W * *",
		"0 12 1,15 * *", "5 4 * * SUN", "23 0-20/2 * * *", "0 0,12 1 */2 *", "*/10 * * * * *",
		"0 0 1-7 * */7", "0 0 13 * 5",
	}
	for _, expr := range exprs {
		t.Run(expr, func(t *testing.T) {
			e, err := Parse(expr, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			ours, theirs := mustTime(t, "2026-01-01T00:00:00Z"), mustTime(t, "2026-01-01T00:00:00Z")
			for i := 0; i < 40; i++ {
				var ok bool
				if ours, ok = e.Next(ours); !ok {
					t.Fatalf("no fire time after step %d", i)
				}
				if theirs, err = gronx.NextTickAfter(expr, theirs, false); err != nil {
					t.Fatalf("gronx: %v", err)
				}
				if !ours.Equal(theirs) {
					t.Fatalf("fire %d: ours %s, gronx %s", i+1, ours, theirs)
				}
			}
		})
	}
}

func BenchmarkNext(b *testing.B) {
	loc := mustLoad(b, "America/New_York")
	for _, expr := range []string{"rate(5 minutes)", "*/15 * * * *", "cron(15 10 ? * 6L *)", "0 0 29 2 *"} {
		b.Run(expr, func(b *testing.B) {
			e, err := Parse(expr, loc)
			if err != nil {
				b.Fatal(err)
			}
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
			for b.Loop() {
				at, _ = e.Next(at)
			}
		})
	}
}
