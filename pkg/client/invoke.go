package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// maxResultBody bounds a sync result read by Invoke (the platform caps
// results well below this).
const maxResultBody = 64 << 20

// InvokeOptions selects how Invoke calls a function.
type InvokeOptions struct {
	LogTail bool // ask for the last 4 KB of log (sync only)
	Async   bool // queue the event and return at once with a request id
}

// InvokeResult is the outcome of Invoke. For an async call only RequestID
// is set.
type InvokeResult struct {
	// Payload is the result JSON, or the error JSON when FunctionError is set.
	Payload []byte
	// FunctionError is "Unhandled" when the function ran and failed
	// (header X-Nimbus-Function-Error), empty on success.
	FunctionError string
	RequestID     string
	// LogTail is the decoded X-Nimbus-Log-Result, when asked for.
	LogTail string
	// Cold reports whether the invocation started a new instance.
	Cold bool
	// Version is the version that ran: "$LATEST" or a number (header
	// X-Nimbus-Executed-Version).
	Version string
	// ErrorType is the error type of a streamed invocation that failed
	// after its stream began (InvokeStream).
	ErrorType string
}

// Invoke calls function name with event (JSON). A function that fails still
// yields a nil error: look at FunctionError. Errors are *APIError when the
// platform refused or failed, or transport errors.
func (c *Client) Invoke(ctx context.Context, name string, event []byte, opts InvokeOptions) (InvokeResult, error) {
	path := functionPath(name) + "/invoke"
	req, err := c.newRequest(ctx, http.MethodPost, path, nil, bytes.NewReader(event))
	if err != nil {
		return InvokeResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if opts.Async {
		req.Header.Set(HeaderInvocationType, "async")
	}
	if opts.LogTail {
		req.Header.Set(HeaderLogTail, "true")
	}
	resp, err := c.send(req)
	if err != nil {
		return InvokeResult{}, err
	}
	defer resp.Body.Close()
	res := InvokeResult{
		RequestID:     resp.Header.Get(HeaderRequestID),
		FunctionError: resp.Header.Get(HeaderFunctionError),
	}
	res.Cold, _ = strconv.ParseBool(resp.Header.Get(HeaderColdStart))
	res.Version = resp.Header.Get(HeaderExecutedVersion)
	if lt := resp.Header.Get(HeaderLogResult); lt != "" {
		b, err := base64.StdEncoding.DecodeString(lt)
		if err != nil {
			return res, decodeErr(http.MethodPost, path, err)
		}
		res.LogTail = string(b)
	}
	if opts.Async || resp.StatusCode == http.StatusAccepted {
		var out struct {
			RequestID string `json:"request_id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return res, decodeErr(http.MethodPost, path, err)
		}
		if out.RequestID != "" {
			res.RequestID = out.RequestID
		}
		return res, nil
	}
	res.Payload, err = io.ReadAll(io.LimitReader(resp.Body, maxResultBody))
	if err != nil {
		return res, err
	}
	return res, nil
}

// InvocationQuery filters ListInvocations; zero fields do not filter.
type InvocationQuery struct {
	Function string
	Status   string // StatusSuccess, StatusFailed, ...
	Limit    int
}

// ListInvocations lists recent invocation records, newest first as the
// server orders them.
func (c *Client) ListInvocations(ctx context.Context, q InvocationQuery) ([]Invocation, error) {
	v := url.Values{}
	if q.Function != "" {
		v.Set("function", q.Function)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out struct {
		Invocations []Invocation `json:"invocations"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/invocations", v, nil, &out)
	if out.Invocations == nil && err == nil {
		out.Invocations = []Invocation{}
	}
	return out.Invocations, err
}

// GetInvocation returns one invocation record.
func (c *Client) GetInvocation(ctx context.Context, id string) (Invocation, error) {
	var inv Invocation
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/invocations/"+url.PathEscape(id), nil, nil, &inv)
	return inv, err
}

// InvokeStream calls function name with event and hands the result to
// out as it arrives: a generator handler's chunks as it yields them
// (?stream=true), or a plain result (or error JSON) whole. The returned
// result has no Payload; FunctionError is set when the function failed,
// before its stream began (header) or after (trailer, with ErrorType).
func (c *Client) InvokeStream(ctx context.Context, name string, event []byte, out func([]byte) error) (InvokeResult, error) {
	path := functionPath(name) + "/invoke"
	req, err := c.newRequest(ctx, http.MethodPost, path, url.Values{"stream": {"true"}}, bytes.NewReader(event))
	if err != nil {
		return InvokeResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return InvokeResult{}, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if werr := out(buf[:n]); werr != nil {
				return InvokeResult{}, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return InvokeResult{}, decodeErr(http.MethodPost, path, err)
		}
	}
	res := InvokeResult{RequestID: resp.Header.Get(HeaderRequestID), FunctionError: resp.Header.Get(HeaderFunctionError)}
	res.Cold, _ = strconv.ParseBool(resp.Header.Get(HeaderColdStart))
	res.Version = resp.Header.Get(HeaderExecutedVersion)
	if fe := resp.Trailer.Get(HeaderFunctionError); fe != "" {
		res.FunctionError, res.ErrorType = fe, resp.Trailer.Get(HeaderErrorType)
	}
	return res, nil
}
