package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

const (
	maxConfigBytes = 64 << 10
	// maxDeployBody bounds a deploy request: the zip limit plus room for
	// the config and multipart framing (base64 in JSON is 4/3 larger).
	maxDeployBody = 50<<20*4/3 + 1<<20
)

// consistentReader is a control plane that can bring its state up to
// date with the leader's before a read (controlplane.Node).
type consistentReader interface {
	ConsistentRead(ctx context.Context) error
}

// readConsistently honours a read's request for consistency (query
// consistent=1 or true, or header X-Nimbus-Consistency: strong): it makes
// this server's state reflect every write committed before the request.
// Without it a read answers from this server's state, which a follower
// may hold slightly behind the leader's. A control plane that cannot lag
// (no replicas) needs nothing.
func (g *Gateway) readConsistently(r *http.Request) error {
	v := r.URL.Query().Get("consistent")
	strong := v == "1" || v == "true" || strings.EqualFold(r.Header.Get("X-Nimbus-Consistency"), "strong")
	cr, ok := g.cfg.Control.(consistentReader)
	if !strong || !ok {
		return nil
	}
	return cr.ConsistentRead(r.Context())
}

// defaultListPage is the page a list of functions or schedules without
// ?limit= returns, as logs and records have theirs. Every list is paged:
// a namespace of 100,000 functions is a 48 MB answer, seconds to encode;
// a page of 1,000 is 477 KB (p50 13 ms in bench/scale, p99 146 ms on the
// loaded machine), one of 100 is 48 KB (p50 1.7 ms, p99 25-49 ms).
const defaultListPage = 100

func (g *Gateway) listFunctions(w http.ResponseWriter, r *http.Request) {
	if err := g.readConsistently(r); err != nil {
		writeError(w, g.log, err)
		return
	}
	limit, err := queryLimit(r, defaultListPage, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	page, more := g.svc.FunctionsAfter(callerNS(r.Context()), r.URL.Query().Get("after"), limit)
	list := wire.List(page, wire.Function)
	if list == nil {
		list = []client.Function{}
	}
	out := map[string]any{"functions": list}
	if more {
		out["next"] = page[len(page)-1].Name
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getFunction(w http.ResponseWriter, r *http.Request) {
	if err := g.readConsistently(r); err != nil {
		writeError(w, g.log, err)
		return
	}
	// A function deployed through another server a moment ago may not be
	// applied here yet: a miss catches up with the leader first, as an
	// invoke's does.
	f, err := caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) {
		return g.svc.Function(callerNS(r.Context()), r.PathValue("name"))
	})
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Function(f))
}

func (g *Gateway) deleteFunction(w http.ResponseWriter, r *http.Request) {
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			writeError(w, g.log, badRequest(fmt.Sprintf("force=%q is not true or false", v)))
			return
		}
	}
	out, err := g.svc.RemoveFunction(r.Context(), callerNS(r.Context()), r.PathValue("name"), force)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	del := client.DeletedFunction{Function: wire.Function(out.Function)}
	if out.Dependents != nil {
		d := wire.Dependents(*out.Dependents)
		del.Removed = &d
	}
	writeJSON(w, http.StatusOK, del)
}

// putFunction deploys a function: it reads the config and the code, and
// the service does the rest (see service.Deploy).
func (g *Gateway) putFunction(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	r.Body = http.MaxBytesReader(w, r.Body, maxDeployBody)
	cfg, zip, err := readDeploy(r)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if cfg.Name == "" {
		cfg.Name = name
	}
	if cfg.Name != name {
		writeError(w, g.log, badRequest(fmt.Sprintf("config name %q does not match the path's %q", cfg.Name, name)))
		return
	}
	var stream *buildStream
	var progress io.Writer
	if wantsBuildLog(r) {
		stream = &buildStream{w: w}
		progress = stream
	}
	out, err := g.svc.Deploy(r.Context(), callerNS(r.Context()), wire.ModelFunctionConfig(cfg), zip, progress)
	if stream != nil {
		ev := client.DeployEvent{}
		if err != nil {
			status, code, msg := explain(g.log, err)
			ev.Error, ev.Status = &client.APIError{Code: code, Message: msg}, status
		} else {
			fn := wire.Function(out.Function)
			ev.Function, ev.Created = &fn, out.Created
		}
		if stream.finish(ev) {
			return
		}
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	status := http.StatusOK
	if out.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, wire.Function(out.Function))
}

// readDeploy reads the config and the zip from a multipart or JSON body.
func readDeploy(r *http.Request) (client.FunctionConfig, []byte, error) {
	var cfg client.FunctionConfig
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		ct = ""
	}
	switch ct {
	case "multipart/form-data":
		return readMultipartDeploy(r)
	case "application/json":
		var body struct {
			Config        json.RawMessage `json:"config"`
			CodeZipBase64 string          `json:"code_zip_base64"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return cfg, nil, bodyError(err, "body is not valid JSON")
		}
		if err := decodeConfig(body.Config, &cfg); err != nil {
			return cfg, nil, err
		}
		zip, err := base64.StdEncoding.DecodeString(body.CodeZipBase64)
		if err != nil {
			return cfg, nil, badRequest("code_zip_base64 is not valid base64: " + err.Error())
		}
		if len(zip) == 0 {
			return cfg, nil, badRequest("code_zip_base64 is missing: a deploy needs the code")
		}
		return cfg, zip, nil
	}
	return cfg, nil, &apiError{http.StatusUnsupportedMediaType, "UnsupportedMediaType",
		"send multipart/form-data (parts config and code) or application/json ({config, code_zip_base64})"}
}

func readMultipartDeploy(r *http.Request) (client.FunctionConfig, []byte, error) {
	var cfg client.FunctionConfig
	var zip []byte
	var haveConfig bool
	mr, err := r.MultipartReader()
	if err != nil {
		return cfg, nil, badRequest("malformed multipart body: " + err.Error())
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return cfg, nil, bodyError(err, "malformed multipart body")
		}
		switch part.FormName() {
		case "config":
			b, err := io.ReadAll(io.LimitReader(part, maxConfigBytes+1))
			if err != nil {
				return cfg, nil, bodyError(err, "reading config")
			}
			if len(b) > maxConfigBytes {
				return cfg, nil, &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", "config part is over 64 KB"}
			}
			if err := decodeConfig(b, &cfg); err != nil {
				return cfg, nil, err
			}
			haveConfig = true
		case "code":
			limit := codepkg.DefaultLimits().MaxZip
			b, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return cfg, nil, bodyError(err, "reading code")
			}
			if int64(len(b)) > limit {
				return cfg, nil, &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("code zip is over the %d MB limit", limit>>20)}
			}
			zip = b
		}
		part.Close()
	}
	if !haveConfig {
		return cfg, nil, badRequest("multipart body has no config part")
	}
	if len(zip) == 0 {
		return cfg, nil, badRequest("multipart body has no code part: a deploy needs the code")
	}
	return cfg, zip, nil
}

func decodeConfig(b []byte, cfg *client.FunctionConfig) error {
	if len(b) == 0 {
		return badRequest("config is missing")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return badRequest("config is not valid: " + err.Error())
	}
	return nil
}

// sizeLimit says a body limit in the largest whole unit: "6 MB", "64 KB",
// "100 bytes".
func sizeLimit(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// bodyError keeps a body-size error as such (413) and makes anything else
// a 400 with context.
func bodyError(err error, context string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", "request body is over the " + sizeLimit(mbe.Limit) + " limit"}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &apiError{http.StatusRequestTimeout, "RequestTimeout", "the request body did not arrive within the server's body timeout"}
	}
	return badRequest(context + ": " + err.Error())
}
