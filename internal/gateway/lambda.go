package gateway

// The AWS Lambda API (2015-03-31 and its later paths) on the API address,
// for the AWS CLI and the SDKs (docs/spec.md §15). Each request is signed
// with AWS Signature Version 4 by a Nimbus key (its id, the secret
// auth.SigV4Secret derives), whose role and namespace apply as a bearer
// key's. The handlers here only decode Lambda's shapes, authorise, call
// the service (or the invoke path every route shares) and encode; errors
// become Lambda's in one place, lambdaErrorOf.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/sigv4"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// DefaultLambdaRegion is the region of the Lambda API's ARNs unless the
// server is told another (Config.LambdaRegion).
const DefaultLambdaRegion = "us-east-1"

// lambdaTimeFormat is how Lambda writes LastModified.
const lambdaTimeFormat = "2006-01-02T15:04:05.000-0700"

// lambdaRoutes adds the Lambda API's routes to m. Every route is signed
// (lambdaAllow); actions Nimbus does not offer answer lambdaUnsupported,
// naming the action.
func (g *Gateway) lambdaRoutes(m *http.ServeMux) {
	const fn = "/2015-03-31/functions/{name}"
	for _, r := range []route{
		{"POST /2015-03-31/functions", permWrite, scoped, g.lambdaCreateFunction},
		{"GET /2015-03-31/functions/{$}", permRead, scoped, g.lambdaListFunctions},
		{"GET /2015-03-31/functions", permRead, scoped, g.lambdaListFunctions},
		{"GET " + fn, permRead, scoped, g.lambdaGetFunction},
		{"DELETE " + fn, permWrite, scoped, g.lambdaDeleteFunction},
		{"GET " + fn + "/configuration", permRead, scoped, g.lambdaGetConfiguration},
		{"PUT " + fn + "/configuration", permWrite, scoped, g.lambdaUpdateConfiguration},
		{"PUT " + fn + "/code", permWrite, scoped, g.lambdaUpdateCode},
		{"POST " + fn + "/invocations", permWrite, scoped, g.lambdaInvoke},
		{"POST " + fn + "/versions", permWrite, scoped, g.lambdaPublishVersion},
		{"GET " + fn + "/versions", permRead, scoped, g.lambdaListVersions},
		{"POST " + fn + "/aliases", permWrite, scoped, g.lambdaCreateAlias},
		{"GET " + fn + "/aliases", permRead, scoped, g.lambdaListAliases},
		{"GET " + fn + "/aliases/{alias}", permRead, scoped, g.lambdaGetAlias},
		{"PUT " + fn + "/aliases/{alias}", permWrite, scoped, g.lambdaUpdateAlias},
		{"DELETE " + fn + "/aliases/{alias}", permWrite, scoped, g.lambdaDeleteAlias},
		{"PUT /2017-10-31/functions/{name}/concurrency", permWrite, scoped, g.lambdaPutConcurrency},
		{"DELETE /2017-10-31/functions/{name}/concurrency", permWrite, scoped, g.lambdaDeleteConcurrency},
		{"GET /2019-09-30/functions/{name}/concurrency", permRead, scoped, g.lambdaGetConcurrency},
		{"PUT /2019-09-25/functions/{name}/event-invoke-config", permWrite, scoped, g.lambdaPutEventInvokeConfig(true)},
		{"POST /2019-09-25/functions/{name}/event-invoke-config", permWrite, scoped, g.lambdaPutEventInvokeConfig(false)},
		{"GET /2019-09-25/functions/{name}/event-invoke-config", permRead, scoped, g.lambdaGetEventInvokeConfig},
		{"DELETE /2019-09-25/functions/{name}/event-invoke-config", permWrite, scoped, g.lambdaDeleteEventInvokeConfig},
		{"GET /2019-09-25/functions/{name}/event-invoke-config/list", permRead, scoped, g.lambdaListEventInvokeConfigs},
		{"GET /2016-08-19/account-settings/{$}", permRead, scoped, g.lambdaAccountSettings},
		{"GET /2016-08-19/account-settings", permRead, scoped, g.lambdaAccountSettings},
		{"GET /2017-03-31/tags/{arn}", permRead, scoped, g.lambdaListTags},
		{"POST /2017-03-31/tags/{arn}", permWrite, scoped, g.lambdaTagResource},
		{"DELETE /2017-03-31/tags/{arn}", permWrite, scoped, g.lambdaUntagResource},
	} {
		m.Handle(r.pattern, g.lambdaAllow(r.perm, r.h))
	}
	for _, prefix := range lambdaAPIPrefixes {
		m.Handle(prefix, g.lambdaAllow(permRead, g.lambdaUnsupported))
	}
}

// lambdaAPIPrefixes are the path prefixes of the Lambda API's versions:
// what is under them and has no route is an action Nimbus does not offer.
var lambdaAPIPrefixes = []string{"/2014-11-13/", "/2015-03-31/", "/2016-08-19/", "/2017-03-31/", "/2017-10-31/",
	"/2018-10-31/", "/2019-09-25/", "/2019-09-30/", "/2020-04-22/", "/2020-06-30/", "/2021-10-31/"}

// lambdaBodyLimit is the most a Lambda API request may send: code (in
// base64) to CreateFunction and UpdateFunctionCode, an event to Invoke
// (which checks an Event's smaller limit itself), 1 MB to the others.
func lambdaBodyLimit(r *http.Request) int64 {
	switch p := r.URL.Path; {
	case r.Method == http.MethodPost && p == "/2015-03-31/functions",
		r.Method == http.MethodPut && strings.HasSuffix(p, "/code"):
		return maxDeployBody
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/invocations"):
		return maxSyncPayload
	}
	return 1 << 20
}

// signerKnown reports whether r's SigV4 Authorization header names the
// access key id of a key the store has: otherwise the request is refused
// before its body is read.
func (g *Gateway) signerKnown(r *http.Request) bool {
	_, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return false
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	_, err := g.cfg.Control.Store().Key(id)
	return err == nil
}

// lambdaAllow authenticates a Lambda API request by its SigV4 signature
// (the body is read first: it is signed), then checks the key's role,
// rate and namespace exactly as allow does for a bearer key, and audits
// the changes.
func (g *Gateway) lambdaAllow(p perm, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amzn-RequestId", newRequestID())
		var body []byte
		if g.signerKnown(r) {
			var err error
			if body, err = readBody(w, r, lambdaBodyLimit(r), "reading the request"); err != nil {
				g.writeLambdaError(w, err)
				return
			}
		}
		// Without a known signer, the check fails on the header alone.
		key, err := auth.CheckSigV4(g.cfg.Control.Store(), r, body, time.Now())
		if err != nil {
			g.writeLambdaError(w, err)
			return
		}
		if !grants(key.Role, p) {
			g.writeLambdaError(w, lambdaErr(http.StatusForbidden, "AccessDeniedException",
				"a %s key (%s) may not %s %s: it needs %s rights", key.Role, key.ID, r.Method, r.URL.Path, p))
			return
		}
		if wait, ok := g.limits.take(key, g.cfg.RateLimit); !ok {
			g.writeLambdaError(w, rateLimited(w, "key "+key.ID, wait))
			return
		}
		ns, err := g.namespaceFor(key, r.Header.Get(client.HeaderNamespace))
		if err != nil {
			g.writeLambdaError(w, err)
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), keyCtx{}, key), nsCtx{}, ns)
		r = r.WithContext(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Method == http.MethodGet || strings.HasSuffix(r.URL.Path, "/invocations") {
			h(w, r)
			return
		}
		g.serveAudited(w, r, h, ns, key)
	})
}

// lambdaUnsupported answers an action of the Lambda API that Nimbus does
// not offer, naming it.
func (g *Gateway) lambdaUnsupported(w http.ResponseWriter, r *http.Request) {
	action := lambdaActionOf(r.Method, r.URL.Path)
	if action == "" {
		action = "no Lambda action"
	}
	g.writeLambdaError(w, lambdaErr(http.StatusNotFound, "UnsupportedOperationException",
		"%s %s is %s that Nimbus supports: see docs/spec.md §15 for the Lambda API's actions Nimbus offers", r.Method, r.URL.Path, action))
}

// lambdaUnsupportedActions name the Lambda actions Nimbus refuses, by
// method and path pattern (a segment "*" matches any one segment).
var lambdaUnsupportedActions = []struct{ method, path, action string }{
	{"POST", "/2015-03-31/functions/*/policy", "AddPermission"},
	{"GET", "/2015-03-31/functions/*/policy", "GetPolicy"},
	{"DELETE", "/2015-03-31/functions/*/policy/*", "RemovePermission"},
	{"POST", "/2015-03-31/event-source-mappings", "CreateEventSourceMapping"},
	{"GET", "/2015-03-31/event-source-mappings", "ListEventSourceMappings"},
	{"GET", "/2015-03-31/event-source-mappings/*", "GetEventSourceMapping"},
	{"PUT", "/2015-03-31/event-source-mappings/*", "UpdateEventSourceMapping"},
	{"DELETE", "/2015-03-31/event-source-mappings/*", "DeleteEventSourceMapping"},
	{"POST", "/2014-11-13/functions/*/invoke-async", "InvokeAsync"},
	{"GET", "/2018-10-31/layers", "ListLayers"},
	{"GET", "/2018-10-31/layers/*/versions", "ListLayerVersions"},
	{"POST", "/2018-10-31/layers/*/versions", "PublishLayerVersion"},
	{"GET", "/2018-10-31/layers/*/versions/*", "GetLayerVersion"},
	{"DELETE", "/2018-10-31/layers/*/versions/*", "DeleteLayerVersion"},
	{"POST", "/2018-10-31/layers/*/versions/*/policy", "AddLayerVersionPermission"},
	{"GET", "/2018-10-31/layers/*/versions/*/policy", "GetLayerVersionPolicy"},
	{"DELETE", "/2018-10-31/layers/*/versions/*/policy/*", "RemoveLayerVersionPermission"},
	{"PUT", "/2019-09-30/functions/*/provisioned-concurrency", "PutProvisionedConcurrencyConfig"},
	{"GET", "/2019-09-30/functions/*/provisioned-concurrency", "GetProvisionedConcurrencyConfig (or ListProvisionedConcurrencyConfigs)"},
	{"DELETE", "/2019-09-30/functions/*/provisioned-concurrency", "DeleteProvisionedConcurrencyConfig"},
	{"POST", "/2020-04-22/code-signing-configs", "CreateCodeSigningConfig"},
	{"GET", "/2020-04-22/code-signing-configs", "ListCodeSigningConfigs"},
	{"GET", "/2020-04-22/code-signing-configs/*", "GetCodeSigningConfig"},
	{"PUT", "/2020-04-22/code-signing-configs/*", "UpdateCodeSigningConfig"},
	{"DELETE", "/2020-04-22/code-signing-configs/*", "DeleteCodeSigningConfig"},
	{"GET", "/2020-04-22/code-signing-configs/*/functions", "ListFunctionsByCodeSigningConfig"},
	{"GET", "/2020-06-30/functions/*/code-signing-config", "GetFunctionCodeSigningConfig"},
	{"PUT", "/2020-06-30/functions/*/code-signing-config", "PutFunctionCodeSigningConfig"},
	{"DELETE", "/2020-06-30/functions/*/code-signing-config", "DeleteFunctionCodeSigningConfig"},
	{"POST", "/2021-10-31/functions/*/url", "CreateFunctionUrlConfig"},
	{"GET", "/2021-10-31/functions/*/url", "GetFunctionUrlConfig"},
	{"PUT", "/2021-10-31/functions/*/url", "UpdateFunctionUrlConfig"},
	{"DELETE", "/2021-10-31/functions/*/url", "DeleteFunctionUrlConfig"},
	{"GET", "/2021-10-31/functions/*/urls", "ListFunctionUrlConfigs"},
}

// lambdaActionOf names the Lambda action Nimbus refuses that method and
// path call ("" when they call none).
func lambdaActionOf(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, a := range lambdaUnsupportedActions {
		want := strings.Split(strings.Trim(a.path, "/"), "/")
		if a.method != method || len(want) != len(segs) {
			continue
		}
		match := true
		for i := range want {
			if want[i] != "*" && want[i] != segs[i] {
				match = false
				break
			}
		}
		if match {
			return "the Lambda action " + a.action + ", not one"
		}
	}
	return ""
}

// lambdaError is an error of the Lambda API with its status and type
// (the exception botocore raises).
type lambdaError struct {
	status int
	typ    string
	msg    string
}

func (e *lambdaError) Error() string { return e.msg }

func lambdaErr(status int, typ, format string, args ...any) error {
	return &lambdaError{status, typ, fmt.Sprintf(format, args...)}
}

// invalidParam is the InvalidParameterValueException of a bad field.
func invalidParam(format string, args ...any) error {
	return lambdaErr(http.StatusBadRequest, "InvalidParameterValueException", format, args...)
}

// lambdaErrorOf maps an error to the Lambda API's status and error type.
// It is the one place where they are decided: SigV4 refusals by
// sigv4.AWSError, the Lambda handlers' own errors as they say, and every
// other error by its status (statusOf, the one mapping of Nimbus's
// sentinels) turned into the exception Lambda answers it with.
func lambdaErrorOf(err error) (int, string) {
	var le *lambdaError
	if errors.As(err, &le) {
		return le.status, le.typ
	}
	if typ, status := sigv4.AWSError(err); typ != "" {
		return status, typ
	}
	status, code := statusOf(err)
	switch status {
	case http.StatusNotFound:
		return status, "ResourceNotFoundException"
	case http.StatusBadRequest, http.StatusUnprocessableEntity: // a scan's block is the deploy's refusal
		return http.StatusBadRequest, "InvalidParameterValueException"
	case http.StatusConflict:
		return status, "ResourceConflictException"
	case http.StatusTooManyRequests:
		return status, "TooManyRequestsException"
	case http.StatusRequestEntityTooLarge:
		return status, "RequestTooLargeException"
	case http.StatusForbidden:
		return status, "AccessDeniedException"
	case http.StatusUnauthorized:
		return http.StatusForbidden, "UnrecognizedClientException"
	case http.StatusUnsupportedMediaType:
		return status, "UnsupportedMediaTypeException"
	case http.StatusServiceUnavailable:
		return status, "ServiceException"
	}
	if code == "ClientClosed" {
		return status, "ClientClosed"
	}
	return status, "ServiceException"
}

// lambdaErrorBody is Lambda's error document. botocore reads the type
// from the X-Amzn-ErrorType header and the message from "message" or
// "Message" (the exceptions' shapes use either), so both are sent.
type lambdaErrorBody struct {
	Type              string `json:"Type"`
	Message           string `json:"Message"`
	LowerMessage      string `json:"message"`
	Reason            string `json:"Reason,omitempty"`
	RetryAfterSeconds string `json:"retryAfterSeconds,omitempty"`
}

// writeLambdaError answers err in Lambda's shape: the status, the header
// X-Amzn-ErrorType and {"Type": "User"|"Service", "Message": …}. An
// internal error's message is explain's (an id the log has), never the
// error itself.
func (g *Gateway) writeLambdaError(w http.ResponseWriter, err error) {
	status, typ := lambdaErrorOf(err)
	msg := err.Error()
	var le *lambdaError
	if sigTyp, _ := sigv4.AWSError(err); sigTyp == "" && !errors.As(err, &le) {
		_, _, msg = explain(g.log, err) // an internal error's message is an id
	}
	body := lambdaErrorBody{Type: "User", Message: msg, LowerMessage: msg}
	if status >= 500 {
		body.Type = "Service"
	}
	if status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
		body.RetryAfterSeconds = w.Header().Get("Retry-After")
		body.Reason = throttleReason(err)
	}
	w.Header().Set("X-Amzn-ErrorType", typ)
	writeLambdaJSON(w, status, body)
}

// throttleReason is the Reason of a TooManyRequestsException: which
// limit refused the request, in Lambda's words.
func throttleReason(err error) string {
	var ae *apiError
	switch {
	case errors.Is(err, placement.ErrConcurrencyLimit):
		return "ReservedFunctionConcurrentInvocationLimitExceeded"
	case errors.Is(err, worker.ErrNoCapacity):
		return "ConcurrentInvocationLimitExceeded"
	case errors.As(err, &ae) && ae.status == http.StatusTooManyRequests:
		return "CallerRateLimitExceeded" // the key's rate (rateLimited)
	}
	return ""
}

// writeLambdaJSON answers v as JSON, as Lambda does.
func writeLambdaJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Type":"Service","Message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// decodeLambda reads a Lambda request's JSON body into v (an empty body
// is an empty object).
func decodeLambda(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return lambdaErr(http.StatusBadRequest, "InvalidRequestContentException", "the request body is not valid JSON of this action: %v", err)
	}
	return nil
}

// AccountID is the 12-digit AWS account id of namespace ns in the Lambda
// API's ARNs: the first 8 bytes of SHA-256("nimbus lambda account " + ns)
// as a big-endian number, modulo 10^12, with leading zeros. Every server
// derives the same one; two namespaces sharing one is as unlikely as a
// collision of 40 random bits.
func AccountID(ns string) string {
	sum := sha256.Sum256([]byte("nimbus lambda account " + model.NamespaceOf(ns)))
	return fmt.Sprintf("%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)
}

// lambdaRegion is the region of this server's ARNs.
func (g *Gateway) lambdaRegion() string {
	if g.cfg.LambdaRegion != "" {
		return g.cfg.LambdaRegion
	}
	return DefaultLambdaRegion
}

// functionARN is the ARN of function name in ns, qualified unless
// qualifier is "".
func (g *Gateway) functionARN(ns, name, qualifier string) string {
	arn := "arn:aws:lambda:" + g.lambdaRegion() + ":" + AccountID(ns) + ":function:" + name
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

var (
	lambdaNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	nimbusNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

// functionRef reads a FunctionName as the Lambda API takes it (NAME, an
// ARN arn:aws:lambda:REGION:ACCOUNT:function:NAME, or a partial one
// ACCOUNT:function:NAME, each with an optional :QUALIFIER) in namespace
// ns: the name and the qualifier. An ARN of another account or region
// names nothing here (404); a name Lambda allows but Nimbus does not is
// refused, saying Nimbus's rule.
func (g *Gateway) functionRef(ns, ref string) (name, qualifier string, err error) {
	parts := strings.Split(ref, ":")
	var account, region string
	switch {
	case len(parts) >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" && len(parts) <= 8:
		region, account, name = parts[3], parts[4], parts[6]
		if len(parts) == 8 {
			qualifier = parts[7]
		}
	case len(parts) >= 3 && parts[1] == "function" && len(parts) <= 4:
		account, name = parts[0], parts[2]
		if len(parts) == 4 {
			qualifier = parts[3]
		}
	case len(parts) <= 2:
		name = parts[0]
		if len(parts) == 2 {
			qualifier = parts[1]
		}
	default:
		return "", "", invalidParam("FunctionName %q is neither a function name nor a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])", ref)
	}
	if account != "" && account != AccountID(ns) || region != "" && region != g.lambdaRegion() {
		return "", "", lambdaErr(http.StatusNotFound, "ResourceNotFoundException",
			"function not found: %s (namespace %q is account %s in region %s)", ref, ns, AccountID(ns), g.lambdaRegion())
	}
	if !lambdaNameRe.MatchString(name) {
		return "", "", invalidParam("FunctionName %q is not a function name: 1-64 letters, digits, '-' and '_'", name)
	}
	if !nimbusNameRe.MatchString(name) {
		return "", "", invalidParam("FunctionName %q is a Lambda name but not a Nimbus one: Nimbus function names are 1-63 lower-case letters, digits and '-', starting with a letter", name)
	}
	if qualifier != "" {
		if _, err := model.ParseQualifier(qualifier); err != nil {
			return "", "", invalidParam("Qualifier: %v", err)
		}
	}
	return name, qualifier, nil
}

// lambdaFunctionRef reads the request's {name} path value and its
// Qualifier query, which may not disagree with a qualifier the name
// carries.
func (g *Gateway) lambdaFunctionRef(r *http.Request) (name, qualifier string, err error) {
	name, qualifier, err = g.functionRef(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		return "", "", err
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if qualifier != "" && qualifier != q {
			return "", "", invalidParam("the function name's qualifier %q and the Qualifier %q differ", qualifier, q)
		}
		if _, err := model.ParseQualifier(q); err != nil {
			return "", "", invalidParam("Qualifier: %v", err)
		}
		qualifier = q
	}
	return name, qualifier, nil
}

// lambdaPage reads a list's Marker and MaxItems (1-10,000, default 50).
func lambdaPage(r *http.Request) (marker string, maxItems int, err error) {
	maxItems = 50
	if s := r.URL.Query().Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return "", 0, invalidParam("MaxItems %q is not a number from 1 to %d", s, maxListLimit)
		}
		maxItems = n
	}
	return r.URL.Query().Get("Marker"), maxItems, nil
}

// pageOf returns the page of items after marker (the key of the last
// item of the previous page; "" for the first), at most max of them, and
// the marker of the next page ("" when this is the last).
func pageOf[T any](items []T, key func(T) string, marker string, max int) ([]T, string) {
	start := 0
	if marker != "" {
		for start < len(items) && key(items[start]) <= marker {
			start++
		}
	}
	items = items[start:]
	if len(items) > max {
		return items[:max], key(items[max-1])
	}
	return items, ""
}
