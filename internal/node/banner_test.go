package node

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestCLIInvocationIsHowTheBinaryWasRun(t *testing.T) {
	for _, c := range []struct{ arg0, bin, hint string }{
		{"nimbus", "nimbus", ""},
		{"./nimbus", "./nimbus", ""},
		{"/usr/local/bin/nimbus", "/usr/local/bin/nimbus", ""},
		{"bin/nimbus", "./bin/nimbus", ""},
		{"/tmp/go-build2831/b001/exe/nimbus", "./nimbus", "go build -o nimbus ./cmd/nimbus"},
	} {
		bin, hint := cliInvocation(c.arg0)
		if bin != c.bin || (c.hint == "") != (hint == "") || !strings.Contains(hint, c.hint) {
			t.Errorf("cliInvocation(%q) = %q, %q; want %q and a hint containing %q", c.arg0, bin, hint, c.bin, c.hint)
		}
	}
}

// The banner gives the console's sign-in link and suggests a name no
// example uses, with the binary as it was invoked.
func TestBannerTryLine(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, "http://127.0.0.1:8080", "http://127.0.0.1:8080/ui/login?once=abc", ".nimbus", "", false, nil, 2, "sandbox")
	out := b.String()
	if !strings.Contains(out, "Console:    http://127.0.0.1:8080/ui/login?once=abc\n") {
		t.Errorf("the banner lacks the console's link:\n%s", out)
	}
	bin, _ := cliInvocation(os.Args[0])
	if !strings.Contains(out, bin+" init greeter && "+bin+" deploy greeter") {
		t.Errorf("banner's Try line does not use %q and greeter:\n%s", bin, out)
	}
	entries, err := os.ReadDir("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(out, " init "+e.Name()+" ") {
			t.Errorf("banner suggests %q, the name of an example:\n%s", e.Name(), out)
		}
	}
}

// The one-time console link signs in once, as the admin key, and only
// with its own token.
func TestOnceLoginRedeemsOnce(t *testing.T) {
	o := newOnceLogin()
	tok := o.token
	if o.redeem(tok) != "" {
		t.Fatal("redeemed before the admin key was known")
	}
	o.keyID = "k1"
	if o.redeem(tok+"x") != "" || o.redeem("") != "" {
		t.Fatal("another token was redeemed")
	}
	if got := o.redeem(tok); got != "k1" {
		t.Fatalf("redeem = %q, want k1", got)
	}
	if o.redeem(tok) != "" {
		t.Fatal("the token was redeemed twice")
	}
}
