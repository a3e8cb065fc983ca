package sigv4

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	testID     = "0123456789ab"
	testSecret = "a secret of some length, for the tests"
	otherID    = "ba9876543210"
)

var testNow = time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)

// secrets knows one key: testID.
func secrets(id string) (string, bool) {
	if id == testID {
		return testSecret, true
	}
	return "", false
}

// invokeRequest is a server-side request shaped like a Lambda invoke of
// a qualified function, signed as of at.
func invokeRequest(t *testing.T, body string, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/2015-03-31/functions/my-fn%3A1/invocations?Qualifier=1&LogType=Tail", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
	if err := Sign(r, []byte(body), testID, testSecret, "us-east-1", "lambda", at); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestASignedRequestVerifies(t *testing.T) {
	body := `{"hello": "world"}`
	r := invokeRequest(t, body, testNow)
	c, err := Verify(r, []byte(body), testNow, "lambda", secrets)
	if err != nil {
		t.Fatal(err)
	}
	want := Credential{AccessKeyID: testID, Date: "20240506", Region: "us-east-1", Service: "lambda"}
	if c != want {
		t.Fatalf("credential %+v, want %+v", c, want)
	}
}

// TestAGoClientsSignedRequestVerifiesAtTheServer sends a request Sign
// signed through a real connection, so the server sees what Go's client
// puts on the wire (Host, Content-Length, the escaped path).
func TestAGoClientsSignedRequestVerifiesAtTheServer(t *testing.T) {
	verified := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := Verify(r, body, testNow, "lambda", secrets)
		verified <- err
	}))
	defer srv.Close()
	body := []byte(`{"Timeout": 30}`)
	r, _ := http.NewRequest("PUT", srv.URL+"/2015-03-31/functions/my-fn%3A1/configuration?Marker=a%20b", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if err := Sign(r, body, testID, testSecret, "eu-west-1", "lambda", testNow); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-verified; err != nil {
		t.Fatal(err)
	}
}

// TestAWSTestSuiteVanillaGet checks the known answer of the get-vanilla
// case of AWS's SigV4 test suite.
func TestAWSTestSuiteVanillaGet(t *testing.T) {
	r := httptest.NewRequest("GET", "https://example.amazonaws.com/", nil)
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	secret := func(id string) (string, bool) {
		return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", id == "AKIDEXAMPLE"
	}
	if _, err := Verify(r, nil, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC), "service", secret); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	const body = `{"hello": "world"}`
	replaceAuth := func(old, new string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), old, new, 1))
		}
	}
	setAuth := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	for _, c := range []struct {
		name   string
		at     time.Time // when the request is signed; zero: testNow
		change func(r *http.Request)
		body   string // the body Verify is given; "": the signed one
		want   error  // nil: accepted
	}{
		{name: "a request signed four minutes ago is accepted", at: testNow.Add(-4 * time.Minute)},
		{name: "a request signed four minutes ahead is accepted", at: testNow.Add(4 * time.Minute)},
		{name: "a header Sign did not sign may be added after signing",
			change: func(r *http.Request) { r.Header.Set("X-Forwarded-For", "10.0.0.1") }},
		{name: "a signature with one character changed is refused", want: ErrSignature,
			change: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				last := a[len(a)-1]
				repl := byte('0')
				if last == '0' {
					repl = '1'
				}
				r.Header.Set("Authorization", a[:len(a)-1]+string(repl))
			}},
		{name: "a signature that is not hex is refused", want: ErrSignature, change: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, "Signature=")]+"Signature=zz")
		}},
		{name: "a body changed after signing is refused", body: `{"hello": "World"}`, want: ErrSignature},
		{name: "a body changed after signing is refused without X-Amz-Content-Sha256 too", body: `{"hello": "World"}`, want: ErrSignature,
			change: func(r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }},
		{name: "a signed header changed after signing is refused", want: ErrSignature,
			change: func(r *http.Request) { r.Header.Set("X-Amz-Invocation-Type", "Event") }},
		{name: "a query parameter changed after signing is refused", want: ErrSignature,
			change: func(r *http.Request) { r.URL.RawQuery = "Qualifier=2&LogType=Tail" }},
		{name: "another host is refused", want: ErrSignature,
			change: func(r *http.Request) { r.Host = "127.0.0.1:8081" }},
		{name: "a request signed six minutes ago has expired", at: testNow.Add(-6 * time.Minute), want: ErrExpired},
		{name: "a request signed six minutes ahead has expired", at: testNow.Add(6 * time.Minute), want: ErrExpired},
		{name: "a scope date that is not the request's day is refused", want: ErrSignature,
			change: replaceAuth("/20240506/", "/20240505/")},
		{name: "a credential for another service is refused", want: ErrSignature,
			change: replaceAuth("/lambda/", "/s3/")},
		{name: "another key's access key id is unknown", want: ErrUnknownKey,
			change: replaceAuth("Credential="+testID, "Credential="+otherID)},
		{name: "SignedHeaders without host is malformed", want: ErrMalformed,
			change: replaceAuth("SignedHeaders=content-type;host;", "SignedHeaders=content-type;")},
		{name: "SignedHeaders out of order is malformed", want: ErrMalformed,
			change: replaceAuth("SignedHeaders=content-type;host;", "SignedHeaders=host;content-type;")},
		{name: "SignedHeaders in upper case is malformed", want: ErrMalformed,
			change: replaceAuth("SignedHeaders=content-type;host;", "SignedHeaders=Content-Type;host;")},
		{name: "a scope not ending in aws4_request is malformed", want: ErrMalformed,
			change: replaceAuth("/aws4_request", "/aws5_request")},
		{name: "a credential of four parts is malformed", want: ErrMalformed,
			change: replaceAuth("/us-east-1/", "/")},
		{name: "a credential date that is not a date is malformed", want: ErrMalformed,
			change: replaceAuth("/20240506/", "/2024-05-06/")},
		{name: "an algorithm alone is malformed", want: ErrMalformed, change: setAuth("AWS4-HMAC-SHA256")},
		{name: "a header without Signature is malformed", want: ErrMalformed,
			change: setAuth("AWS4-HMAC-SHA256 Credential=" + testID + "/20240506/us-east-1/lambda/aws4_request, SignedHeaders=host")},
		{name: "a parameter without an equals sign is malformed", want: ErrMalformed,
			change: replaceAuth("Credential="+testID, "Credential "+testID)},
		{name: "a parameter given twice is malformed", want: ErrMalformed,
			change: replaceAuth("SignedHeaders=", "Signature=00, SignedHeaders=")},
		{name: "an unknown parameter is malformed", want: ErrMalformed,
			change: replaceAuth("SignedHeaders=", "Extra=1, SignedHeaders=")},
		{name: "another algorithm is malformed", want: ErrMalformed,
			change: replaceAuth("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")},
		{name: "an X-Amz-Date that is not ISO 8601 basic is malformed", want: ErrMalformed,
			change: func(r *http.Request) { r.Header.Set("X-Amz-Date", "2024-05-06T12:00:00Z") }},
		{name: "a request without a date is malformed", want: ErrMalformed,
			change: func(r *http.Request) { r.Header.Del("X-Amz-Date") }},
		{name: "an unsigned payload is malformed", want: ErrMalformed,
			change: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD") }},
		{name: "a query with an invalid escape is malformed", want: ErrMalformed,
			change: func(r *http.Request) { r.URL.RawQuery = "Qualifier=%zz" }},
		{name: "a presigned URL is malformed", want: ErrMalformed,
			change: func(r *http.Request) {
				r.Header.Del("Authorization")
				r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"
			}},
		{name: "a request without Authorization is not SigV4", want: ErrMissing,
			change: func(r *http.Request) { r.Header.Del("Authorization") }},
		{name: "a bearer token is not SigV4", want: ErrMissing, change: setAuth("Bearer nimbus_0123456789ab_secret")},
	} {
		t.Run(c.name, func(t *testing.T) {
			at := c.at
			if at.IsZero() {
				at = testNow
			}
			r := invokeRequest(t, body, at)
			if c.change != nil {
				c.change(r)
			}
			b := body
			if c.body != "" {
				b = c.body
			}
			_, err := Verify(r, []byte(b), testNow, "lambda", secrets)
			if c.want == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestAnExpiredSignatureNamesBothTimes(t *testing.T) {
	r := invokeRequest(t, "", testNow.Add(-6*time.Minute))
	_, err := Verify(r, nil, testNow, "lambda", secrets)
	for _, s := range []string{"20240506T115400Z", "20240506T120000Z", "6m0s behind"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
}

func TestSecretOfIsNotAskedForARequestRefusedEarlier(t *testing.T) {
	r := invokeRequest(t, "", testNow.Add(-time.Hour))
	asked := false
	Verify(r, nil, testNow, "lambda", func(string) (string, bool) { asked = true; return "", false })
	if asked {
		t.Fatal("the secret was looked up for an expired request")
	}
}

func TestCanonicalURI(t *testing.T) {
	for _, c := range []struct{ name, path, want string }{
		{"an empty path is the root", "", "/"},
		{"the root stays the root", "/", "/"},
		{"a Lambda path is unchanged", "/2015-03-31/functions/my-fn/invocations", "/2015-03-31/functions/my-fn/invocations"},
		{"an escape in the path is encoded again", "/2015-03-31/functions/my-fn%3A1/invocations", "/2015-03-31/functions/my-fn%253A1/invocations"},
		{"a trailing slash is kept", "/2015-03-31/functions/", "/2015-03-31/functions/"},
		{"dot segments and empty segments are removed", "/a/./b/../c//d/", "/a/c/d/"},
		{"reserved characters are encoded", "/a:b@c$d", "/a%3Ab%40c%24d"},
		{"unreserved characters are not", "/A-Z_a.z~0", "/A-Z_a.z~0"},
	} {
		if got := canonicalURI(c.path); got != c.want {
			t.Errorf("%s: canonicalURI(%q) = %q, want %q", c.name, c.path, got, c.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	for _, c := range []struct{ name, raw, want string }{
		{"no query is empty", "", ""},
		{"parameters are sorted by name", "MaxItems=2&Marker=abc", "Marker=abc&MaxItems=2"},
		{"a repeated name is sorted by value", "b=2&a=1&a=0", "a=0&a=1&b=2"},
		{"a name sorts before a longer one it starts", "a-b=1&a=2", "a=2&a-b=1"},
		{"a name without a value gets an empty one", "k", "k="},
		{"escapes are decoded and encoded again in upper case", "x=a%20b%2fc", "x=a%20b%2Fc"},
		{"a plus is a plus sign", "x=a+b", "x=a%2Bb"},
		{"empty parameters are dropped", "a=1&&b=2", "a=1&b=2"},
	} {
		got, err := canonicalQuery(c.raw)
		if err != nil || got != c.want {
			t.Errorf("%s: canonicalQuery(%q) = %q, %v, want %q", c.name, c.raw, got, err, c.want)
		}
	}
}

func TestAWSError(t *testing.T) {
	for _, c := range []struct {
		err    error
		typ    string
		status int
	}{
		{ErrMissing, "MissingAuthenticationTokenException", 403},
		{ErrMalformed, "IncompleteSignatureException", 400},
		{ErrUnknownKey, "UnrecognizedClientException", 403},
		{ErrExpired, "InvalidSignatureException", 403},
		{ErrSignature, "InvalidSignatureException", 403},
		{errors.New("something else"), "", 0},
	} {
		wrapped := errors.Join(errors.New("detail"), c.err)
		if typ, status := AWSError(wrapped); typ != c.typ || status != c.status {
			t.Errorf("AWSError(%v) = %s, %d, want %s, %d", c.err, typ, status, c.typ, c.status)
		}
	}
}
