package sigv4

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// python is the interpreter Debian's python3-boto3 installs botocore for.
const python = "/usr/bin/python3"

// botocoreRequest is one request testdata/botocore_sign.py signed.
type botocoreRequest struct {
	Name    string
	Method  string
	URL     string
	Headers map[string]string
	Body    string
}

// TestBotocoreSignaturesVerify has botocore, the signer of the AWS CLI
// and boto3, sign Lambda requests (by hand and through the real Lambda
// client), sends each to a server of its own exactly as botocore would
// and verifies it there: accepted with the secret it was signed with,
// refused with another.
func TestBotocoreSignaturesVerify(t *testing.T) {
	if err := exec.Command(python, "-c", "import botocore").Run(); err != nil {
		t.Fatalf("%s cannot import botocore (%v): run ./scripts/deps (it installs python3-boto3 and awscli)", python, err)
	}
	type result struct {
		good, bad error
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var res result
		_, res.good = Verify(r, body, botocoreTime, "lambda", func(id string) (string, bool) { return testSecret, id == testID })
		_, res.bad = Verify(r, body, botocoreTime, "lambda", func(id string) (string, bool) { return testSecret + "x", id == testID })
		results <- res
	}))
	defer srv.Close()

	out, err := exec.Command(python, "testdata/botocore_sign.py", srv.URL, testID, testSecret, botocoreTime.Format(TimeFormat)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("botocore_sign.py: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var reqs []botocoreRequest
	if err := json.Unmarshal(out, &reqs); err != nil {
		t.Fatalf("botocore_sign.py's output: %v\n%s", err, out)
	}
	if len(reqs) < 10 {
		t.Fatalf("botocore_sign.py signed %d requests, want at least 10", len(reqs))
	}
	for _, b := range reqs {
		t.Run(b.Name, func(t *testing.T) {
			r, err := http.NewRequest(b.Method, b.URL, strings.NewReader(b.Body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range b.Headers {
				if strings.EqualFold(k, "host") {
					r.Host = v
					continue
				}
				r.Header[k] = []string{v} // as botocore spelled it
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			res := <-results
			if res.good != nil {
				t.Errorf("%s %s signed by botocore is refused: %v", b.Method, b.URL, res.good)
			}
			if !errors.Is(res.bad, ErrSignature) {
				t.Errorf("%s %s is not refused with another secret: %v", b.Method, b.URL, res.bad)
			}
		})
	}
}

// botocoreTime is when botocore_sign.py signs.
var botocoreTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
