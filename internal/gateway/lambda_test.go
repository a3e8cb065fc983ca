package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/placement"
	"nimbus/internal/service"
	"nimbus/internal/sigv4"
	"nimbus/internal/state"
)

// Every error a Lambda handler meets answers with the exception botocore
// raises for it, at Lambda's status.
func TestLambdaErrorsMapToLambdasExceptions(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"a missing object is ResourceNotFound", fmt.Errorf("function %q: %w", "f", state.ErrNotFound), 404, "ResourceNotFoundException"},
		{"an invalid value is InvalidParameterValue", state.Errorf(state.ErrInvalid, "memory"), 400, "InvalidParameterValueException"},
		{"a conflict is ResourceConflict", state.Errorf(state.ErrConflict, "exists"), 409, "ResourceConflictException"},
		{"a concurrency limit is TooManyRequests", placement.ErrConcurrencyLimit, 429, "TooManyRequestsException"},
		{"a body over its limit is RequestTooLarge", &http.MaxBytesError{Limit: 10}, 413, "RequestTooLargeException"},
		{"a refused action is AccessDenied", service.ErrForbidden, 403, "AccessDeniedException"},
		{"another namespace is AccessDenied", &apiError{http.StatusForbidden, "Forbidden", "not yours"}, 403, "AccessDeniedException"},
		{"a wrong signature is InvalidSignature", fmt.Errorf("%w: no", sigv4.ErrSignature), 403, "InvalidSignatureException"},
		{"an old signature is InvalidSignature", fmt.Errorf("%w: old", sigv4.ErrExpired), 403, "InvalidSignatureException"},
		{"an unknown key is UnrecognizedClient", sigv4.ErrUnknownKey, 403, "UnrecognizedClientException"},
		{"no signature is MissingAuthenticationToken", sigv4.ErrMissing, 403, "MissingAuthenticationTokenException"},
		{"a handler's own error says its type", invalidParam("Handler"), 400, "InvalidParameterValueException"},
		{"anything else is a ServiceException", errors.New("disk on fire"), 500, "ServiceException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if status, typ := lambdaErrorOf(c.err); status != c.status || typ != c.typ {
				t.Fatalf("lambdaErrorOf(%v) = %d %s, want %d %s", c.err, status, typ, c.status, c.typ)
			}
		})
	}
}

func TestFunctionRefReadsNamesAndARNsOfItsOwnAccount(t *testing.T) {
	g := &Gateway{}
	acct := AccountID("default")
	cases := []struct {
		name, ref       string
		fn, qualifier   string
		status          int // of the error; 0 for none
		typ, mentioning string
	}{
		{"a plain name", "hello", "hello", "", 0, "", ""},
		{"a name with a version", "hello:3", "hello", "3", 0, "", ""},
		{"a name with an alias", "hello:live", "hello", "live", 0, "", ""},
		{"a full ARN", "arn:aws:lambda:us-east-1:" + acct + ":function:hello", "hello", "", 0, "", ""},
		{"a qualified ARN", "arn:aws:lambda:us-east-1:" + acct + ":function:hello:$LATEST", "hello", "$LATEST", 0, "", ""},
		{"a partial ARN", acct + ":function:hello", "hello", "", 0, "", ""},
		{"another account's ARN", "arn:aws:lambda:us-east-1:123456789012:function:hello", "", "", 404, "ResourceNotFoundException", "account"},
		{"another region's ARN", "arn:aws:lambda:eu-west-1:" + acct + ":function:hello", "", "", 404, "ResourceNotFoundException", "region"},
		{"a Lambda name Nimbus does not take", "Hello_World", "", "", 400, "InvalidParameterValueException", "Nimbus function names"},
		{"a name Lambda does not take", "hello world", "", "", 400, "InvalidParameterValueException", "1-64"},
		{"a qualifier that is none", "hello:no/thing", "", "", 400, "InvalidParameterValueException", "Qualifier"},
		{"too many colons", "a:b:c:d:e", "", "", 400, "InvalidParameterValueException", "ARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fn, q, err := g.functionRef("default", c.ref)
			if c.status == 0 {
				if err != nil || fn != c.fn || q != c.qualifier {
					t.Fatalf("functionRef(%q) = %q %q %v, want %q %q", c.ref, fn, q, err, c.fn, c.qualifier)
				}
				return
			}
			status, typ := lambdaErrorOf(err)
			if status != c.status || typ != c.typ || !strings.Contains(err.Error(), c.mentioning) {
				t.Fatalf("functionRef(%q): %d %s %v, want %d %s mentioning %q", c.ref, status, typ, err, c.status, c.typ, c.mentioning)
			}
		})
	}
}

func TestAccountIDsAreTwelveDigitsOwnToEachNamespace(t *testing.T) {
	a, b := AccountID("default"), AccountID("team")
	if len(a) != 12 || len(b) != 12 || a == b || strings.Trim(a+b, "0123456789") != "" {
		t.Fatalf("AccountID: %q and %q", a, b)
	}
	if AccountID("") != a {
		t.Fatalf("the empty namespace is default's: %q, not %q", AccountID(""), a)
	}
}

func TestPagesFollowTheMarker(t *testing.T) {
	items := []string{"a", "b", "c"}
	id := func(s string) string { return s }
	var got []string
	marker := ""
	for range 4 {
		page, next := pageOf(items, id, marker, 1)
		got = append(got, page...)
		if next == "" {
			break
		}
		marker = next
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("pages: %v", got)
	}
	if page, next := pageOf(items, id, "", 5); len(page) != 3 || next != "" {
		t.Fatalf("one page of all: %v %q", page, next)
	}
}

func TestUnsupportedActionsAreNamed(t *testing.T) {
	for path, want := range map[string]string{
		"POST /2015-03-31/functions/f/policy":                 "AddPermission",
		"GET /2018-10-31/layers":                              "ListLayers",
		"PUT /2019-09-30/functions/f/provisioned-concurrency": "PutProvisionedConcurrencyConfig",
		"GET /2015-03-31/nothing":                             "",
	} {
		method, p, _ := strings.Cut(path, " ")
		if got := lambdaActionOf(method, p); !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Errorf("lambdaActionOf(%s) = %q, want it to name %q", path, got, want)
		}
	}
}

// signed sends a Lambda API request signed with key's SigV4 credentials.
func (a *testAPI) signed(key, method, path, body string, now time.Time) *httptest.ResponseRecorder {
	a.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		id, secret, err := auth.SigV4SecretOfToken(key)
		if err != nil {
			a.t.Fatal(err)
		}
		if err := sigv4.Sign(r, []byte(body), id, secret, "us-east-1", "lambda", now); err != nil {
			a.t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	a.g.ServeHTTP(w, r)
	return w
}

// A Lambda API request is authenticated by its signature, and the key's
// role decides what it may do, as a bearer key's does; every refusal is
// in Lambda's shape.
func TestLambdaRequestsAnswerInLambdasShape(t *testing.T) {
	a := newTestAPI(t)
	viewer, err := auth.CreateKey(context.Background(), a.cp, auth.RoleViewer, "a viewer")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	create := `{"FunctionName": "f", "Role": "r", "Handler": "main.handler", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}`
	cases := []struct {
		name         string
		key          string
		method, path string
		body         string
		at           time.Time
		status       int
		typ, about   string
	}{
		{"an unsigned request", "", "GET", "/2015-03-31/functions/", "", now, 403, "MissingAuthenticationTokenException", ""},
		{"a request signed 10 minutes ago", viewer, "GET", "/2015-03-31/functions/", "", now.Add(-10 * time.Minute), 403, "InvalidSignatureException", "clock"},
		{"a viewer creating a function", viewer, "POST", "/2015-03-31/functions", create, now, 403, "AccessDeniedException", "write"},
		{"a function that does not exist", viewer, "GET", "/2015-03-31/functions/nope", "", now, 404, "ResourceNotFoundException", "nope"},
		{"an action Nimbus does not offer", viewer, "GET", "/2015-03-31/functions/f/policy", "", now, 404, "UnsupportedOperationException", "GetPolicy"},
		{"a handler without a dot", a.admin, "POST", "/2015-03-31/functions", strings.Replace(create, "main.handler", "handler", 1), now, 400, "InvalidParameterValueException", "MODULE.FUNCTION"},
		{"a body that is not JSON", a.admin, "POST", "/2015-03-31/functions", "{", now, 400, "InvalidRequestContentException", "JSON"},
		{"an image", a.admin, "POST", "/2015-03-31/functions", `{"FunctionName": "f", "PackageType": "Image", "Code": {"ImageUri": "x"}}`, now, 400, "InvalidParameterValueException", "PackageType"},
		{"SnapStart", a.admin, "POST", "/2015-03-31/functions", strings.Replace(create, `"Role"`, `"SnapStart": {"ApplyOn": "PublishedVersions"}, "Role"`, 1), now, 400, "InvalidParameterValueException", "SnapStart"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := a.signed(c.key, c.method, c.path, c.body, c.at)
			var body struct{ Type, Message, LowerMessage string }
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != c.status || w.Header().Get("X-Amzn-ErrorType") != c.typ || body.Type != "User" || !strings.Contains(body.Message, c.about) {
				t.Fatalf("%d %s %s, want %d %s about %q", w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body.String(), c.status, c.typ, c.about)
			}
		})
	}
	if w := a.signed(viewer, "GET", "/2015-03-31/functions/", "", now); w.Code != 200 || !strings.Contains(w.Body.String(), `"Functions":[]`) {
		t.Fatalf("a viewer lists functions: %d %s", w.Code, w.Body.String())
	}
}

func TestThrottlesSayWhichLimit(t *testing.T) {
	w := httptest.NewRecorder()
	for err, want := range map[error]string{
		placement.ErrConcurrencyLimit:        "ReservedFunctionConcurrentInvocationLimitExceeded",
		rateLimited(w, "key k", time.Second): "CallerRateLimitExceeded",
		service.ErrBudgetExceeded:            "",
	} {
		if got := throttleReason(err); got != want {
			t.Errorf("throttleReason(%v) = %q, want %q", err, got, want)
		}
	}
}
