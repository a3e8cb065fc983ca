package deps

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseNormalisesRequirements(t *testing.T) {
	got, err := Parse([]byte("# deps\nrequests==2.31.0  # http\n\nPyYAML >= 6.0, <7\nuvicorn[standard]~=0.29\nattrs ; python_version >= \"3.8\"\nsix \\\n  ==1.16.0\nidna==3.6 --hash=sha256:c05567e9c24a6b9faaa835c4821bad0590fbb9d5779e7caa6e1cc4978e7eb24f\n"), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"requests==2.31.0", "PyYAML>= 6.0, <7", "uvicorn[standard]~=0.29", `attrs ; python_version >= "3.8"`, "six==1.16.0",
		"idna==3.6 --hash=sha256:c05567e9c24a6b9faaa835c4821bad0590fbb9d5779e7caa6e1cc4978e7eb24f"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%q\nwant\n%q", got, want)
	}
}

func TestParseRefusesWhatABuildMayNotReach(t *testing.T) {
	for _, c := range []struct{ line, says string }{
		{"-e git+https://example.test/x.git#egg=x", "editable install"},
		{"--editable .", "editable install"},
		{"-r other.txt", "includes another file"},
		{"-c constraints.txt", "includes another file"},
		{"--index-url http://elsewhere.test/simple", "chooses an index"},
		{"--extra-index-url=http://elsewhere.test/simple", "chooses an index"},
		{"-f /wheels", "chooses an index"},
		{"--pre", "pip options are not allowed"},
		{"./vendor/pkg", "local path"},
		{"/abs/pkg.whl", "local path"},
		{"file:///tmp/x", "local path"},
		{"https://elsewhere.test/pkg-1.0.tar.gz", "is a URL"},
		{"https://elsewhere.test/pkg", "is a URL"},
		{"pkg @ https://elsewhere.test/pkg-1.0-py3-none-any.whl", "does not allow URLs to that host"},
		{"pkg @ ftp://elsewhere.test/pkg", "not an http(s) URL"},
		{"foo bar baz", "is not a version specifier"},
		{"requests = 2", "is not a version specifier"},
		{"requests==1 --install-option=x", "only --hash"},
		{"!!!", "is not a requirement"},
	} {
		t.Run(c.line, func(t *testing.T) {
			_, err := Parse([]byte("ok==1\n"+c.line+"\n"), Policy{})
			if !errors.Is(err, ErrInvalidRequirements) {
				t.Fatalf("err %v, want ErrInvalidRequirements", err)
			}
			if !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), c.says) {
				t.Errorf("err %q should name line 2 and say %q", err, c.says)
			}
		})
	}
}

func TestParseAllowsADirectReferenceToAnAllowedHost(t *testing.T) {
	got, err := Parse([]byte("pkg @ https://wheels.example.test/pkg-1.0-py3-none-any.whl\n"), Policy{URLHosts: []string{"wheels.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "pkg @ https://wheels.example.test/pkg-1.0-py3-none-any.whl" {
		t.Errorf("Parse = %q", got)
	}
}

func TestParseOfNothingIsNoRequirements(t *testing.T) {
	got, err := Parse([]byte("\n# only comments\n   \n"), Policy{})
	if err != nil || len(got) != 0 {
		t.Errorf("Parse = %q, %v; want nothing", got, err)
	}
}
