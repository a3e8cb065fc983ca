package cli

import (
	"errors"
	"strings"
	"testing"
)

func TestReadPasswordTakesTheFirstLineOfStdin(t *testing.T) {
	for _, c := range []struct {
		stdin string
		flag  bool
		want  string // "" for a usage error
	}{
		{"s3cret-pw\n", true, "s3cret-pw"},
		{"s3cret-pw\r\nignored\n", true, "s3cret-pw"},
		{"with spaces inside ", true, "with spaces inside "},
		{"s3cret-pw\n", false, ""},
		{"\n", true, ""},
		{"", true, ""},
		{strings.Repeat("x", maxPasswordInput+1), true, ""},
	} {
		a := &app{env: Env{Stdin: strings.NewReader(c.stdin)}}
		got, err := a.readPassword(c.flag)
		var ee *exitError
		if c.want == "" {
			if !errors.As(err, &ee) || ee.code != ExitUsage {
				t.Errorf("%q (flag %v): %q %v, want a usage error", c.stdin, c.flag, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.stdin, got, err, c.want)
		}
	}
}
