package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// functionPath is the path of one function, its name escaped.
func functionPath(name string) string {
	return "/v1/functions/" + url.PathEscape(name)
}

// PutFunction creates or updates the function cfg.Name with the code in zip
// (a zip archive). It sends multipart/form-data with a `config` part (JSON)
// and a `code` part (application/zip) and reports whether the function was
// created (201) rather than updated (200).
//
// The body is streamed from memory with a known Content-Length; progress,
// when non-nil, is called from the goroutine sending the request with the
// bytes of the whole body handed to the connection so far and the total.
// A request re-sent on a redirect reports from zero again.
func (c *Client) PutFunction(ctx context.Context, cfg FunctionConfig, zip []byte, progress func(done, total int64)) (fn Function, created bool, err error) {
	return c.Deploy(ctx, cfg, zip, DeployOptions{Progress: progress})
}

// DeployOptions are a deploy's optional watchers.
type DeployOptions struct {
	// Progress is PutFunction's progress.
	Progress func(done, total int64)
	// BuildLog, when set, receives the dependency build's log as the
	// server writes it (the deploy asks for DeployStreamType).
	BuildLog io.Writer
}

// DeployStreamType is the media type of a deploy's answer that streams
// its build's log: one DeployEvent per line.
const DeployStreamType = "application/x-ndjson"

// DeployEvent is one line of a streamed deploy answer: a piece of the
// build's log, or, last, the function deployed or the error (with its
// HTTP status).
type DeployEvent struct {
	Log      string    `json:"log,omitempty"`
	Function *Function `json:"function,omitempty"`
	Created  bool      `json:"created,omitempty"`
	Error    *APIError `json:"error,omitempty"`
	Status   int       `json:"status,omitempty"`
}

// Deploy is PutFunction with its options.
func (c *Client) Deploy(ctx context.Context, cfg FunctionConfig, zip []byte, opts DeployOptions) (fn Function, created bool, err error) {
	progress := opts.Progress
	head, tail, contentType, err := multipartFrame(cfg)
	if err != nil {
		return Function{}, false, err
	}
	total := int64(len(head) + len(zip) + len(tail))
	body := func() io.ReadCloser {
		r := io.MultiReader(bytes.NewReader(head), bytes.NewReader(zip), bytes.NewReader(tail))
		if progress == nil {
			return io.NopCloser(r)
		}
		return &progressReader{r: r, total: total, fn: progress}
	}
	req, err := c.newRequest(ctx, http.MethodPut, functionPath(cfg.Name), nil, nil)
	if err != nil {
		return Function{}, false, err
	}
	req.Body = body()
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.ContentLength = total
	req.Header.Set("Content-Type", contentType)
	if opts.BuildLog != nil {
		req.Header.Set("Accept", DeployStreamType+", application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return Function{}, false, err
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), DeployStreamType) {
		return readDeployStream(resp.Body, opts.BuildLog)
	}
	if err := json.NewDecoder(resp.Body).Decode(&fn); err != nil {
		return Function{}, false, decodeErr("PUT", functionPath(cfg.Name), err)
	}
	return fn, resp.StatusCode == http.StatusCreated, nil
}

// multipartFrame renders everything of a deploy body but the zip bytes:
// head (the config part and the code part's header) and tail (the closing
// boundary).
func multipartFrame(cfg FunctionConfig) (head, tail []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="config"`)
	h.Set("Content-Type", "application/json")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return nil, nil, "", err
	}
	if _, err := pw.Write(cj); err != nil {
		return nil, nil, "", err
	}
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="code"; filename="code.zip"`)
	h.Set("Content-Type", "application/zip")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// progressReader counts the bytes read from r and reports them to fn.
type progressReader struct {
	r     io.Reader
	done  atomic.Int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(p.done.Add(int64(n)), p.total)
	}
	return n, err
}

func (p *progressReader) Close() error { return nil }

// GetFunction describes one function.
func (c *Client) GetFunction(ctx context.Context, name string) (Function, error) {
	var fn Function
	_, err := c.doJSON(ctx, http.MethodGet, functionPath(name), nil, nil, &fn)
	return fn, err
}

// ListFunctions lists every function of the namespace, by name: it asks
// for one page after another (see ListFunctionsPage) until the last.
func (c *Client) ListFunctions(ctx context.Context) ([]Function, error) {
	return allPages(func(after string) ([]Function, string, error) { return c.ListFunctionsPage(ctx, after, 0) })
}

// allPages gathers a list page by page: page returns the items after
// after ("" for the first page) and the after of the next ("" at the end).
func allPages[T any](page func(after string) ([]T, string, error)) ([]T, error) {
	all := []T{}
	after := ""
	for {
		items, next, err := page(after)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		after = next
	}
}

// ListFunctionsPage lists the functions after the name after ("" for the
// first page), at most limit of them (0 for the server's default page of
// 100), and returns the after of the next page ("" when this is the
// last).
func (c *Client) ListFunctionsPage(ctx context.Context, after string, limit int) (fns []Function, next string, err error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Functions []Function `json:"functions"`
		Next      string     `json:"next"`
	}
	if _, err := c.doJSON(ctx, http.MethodGet, "/v1/functions", q, nil, &out); err != nil {
		return nil, "", err
	}
	if out.Functions == nil {
		out.Functions = []Function{}
	}
	return out.Functions, out.Next, nil
}

// DeleteFunction deletes a function.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, functionPath(name), nil, nil, nil)
	return err
}

// readDeployStream reads a streamed deploy answer, writing its log to
// log, and returns its outcome.
func readDeployStream(body io.Reader, log io.Writer) (Function, bool, error) {
	dec := json.NewDecoder(body)
	for {
		var ev DeployEvent
		if err := dec.Decode(&ev); err != nil {
			return Function{}, false, fmt.Errorf("client: the deploy's answer ended before its outcome: %w", err)
		}
		switch {
		case ev.Error != nil:
			ev.Error.Status = ev.Status
			return Function{}, false, ev.Error
		case ev.Function != nil:
			return *ev.Function, ev.Created, nil
		case log != nil:
			io.WriteString(log, ev.Log)
		}
	}
}
