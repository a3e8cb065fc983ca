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
	"nimbus/internal/scan"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/fsm"
	"nimbus/internal/pycheck"
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

func (g *Gateway) listFunctions(w http.ResponseWriter, r *http.Request) {
	if err := g.readConsistently(r); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"functions": g.cfg.Control.Store().Functions(callerNS(r.Context()))})
}

func (g *Gateway) getFunction(w http.ResponseWriter, r *http.Request) {
	if err := g.readConsistently(r); err != nil {
		writeError(w, g.log, err)
		return
	}
	f, err := g.cfg.Control.Store().Function(client.QualifiedName(callerNS(r.Context()), r.PathValue("name")))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (g *Gateway) deleteFunction(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PathValue("name"), callerNS(r.Context())
	f, err := g.cfg.Control.Store().Function(client.QualifiedName(ns, name))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		if force, err = strconv.ParseBool(v); err != nil {
			writeError(w, g.log, badRequest(fmt.Sprintf("force=%q is not true or false", v)))
			return
		}
	}
	res, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.RemoveFunction{Namespace: ns, Name: name, Force: force})
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	rm := res
	if !rm.Deleted {
		writeError(w, g.log, &apiError{http.StatusConflict, "Conflict", fmt.Sprintf(
			"function %q is still named by %s: remove them first, or delete with force (nimbus rm --force, ?force=true) to remove them too",
			name, rm.Dependents)})
		return
	}
	g.cfg.Placer.Retire(f.QualifiedName())
	out := client.DeletedFunction{Function: f}
	if !rm.Dependents.Empty() {
		out.Removed = &rm.Dependents
	}
	writeJSON(w, http.StatusOK, out)
}

// putFunction creates or updates a function: validate the config and the
// package, store the code blob, then commit the revision through Raft.
// Nothing is committed unless everything is valid.
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
	codepkg.ApplyDefaults(&cfg)
	if err := codepkg.ValidateConfig(cfg); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := g.checkReserved(callerNS(r.Context()), cfg); err != nil {
		writeError(w, g.log, err)
		return
	}
	if cfg.Runtime, err = g.pickRuntime(cfg.Runtime); err != nil {
		writeError(w, g.log, err)
		return
	}
	if _, err := codepkg.Validate(zip, codepkg.DefaultLimits()); err != nil {
		writeError(w, g.log, err)
		return
	}
	ns := callerNS(r.Context())
	if g.cfg.Checker != nil {
		// Compile, never import: a syntax error or a missing handler
		// module is refused (400, with file and line) before anything is
		// stored, so the previous revision stays served.
		switch err := g.cfg.Checker.Check(r.Context(), zip, cfg.Runtime, cfg.Handler); {
		case errors.Is(err, pycheck.ErrNoRuntime):
			g.log.Warn("deploy not compile-checked: this server has no interpreter for its runtime", "namespace", ns, "function", name, "runtime", cfg.Runtime)
		case err != nil:
			writeError(w, g.log, err)
			return
		}
	}
	policy := g.scanPolicy(ns)
	var report *client.ScanReport
	if policy.Mode != "" && policy.Mode != scan.ModeOff {
		if report, err = g.cfg.Scanner.Scan(r.Context(), zip); err != nil {
			writeError(w, g.log, err)
			return
		}
		if bad := policy.Blocking(report); len(bad) > 0 {
			writeError(w, g.log, &apiError{http.StatusUnprocessableEntity, "CodeScanBlocked", fmt.Sprintf(
				"the code scan blocks this deploy: %d finding(s) at %s or above, first %s:%d %s (%s)",
				len(bad), policy.BlockAt, bad[0].File, bad[0].Line, bad[0].Text, bad[0].TestID)})
			return
		}
	}
	digest, err := g.cfg.Blobs.Put(zip)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if g.cfg.ReplicateBlob != nil {
		if err := g.cfg.ReplicateBlob(r.Context(), zip); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	fn := client.Function{FunctionConfig: cfg, Namespace: ns, CodeSHA256: digest, CodeSize: int64(len(zip)), Scan: report}
	res, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.UpsertFunction{Function: fn, Now: time.Now().UTC()})
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	out := res
	g.cfg.Placer.Prefetch(out.Function)
	if out.Function.Provisioned > 0 {
		go g.cfg.Placer.Provision(out.Function, out.Function.Provisioned) // the leader renews it
	}
	status := http.StatusOK
	if out.Created {
		status = http.StatusCreated
	}
	g.log.Info("function deployed", "namespace", ns, "function", name, "revision", out.Function.Revision, "sha256", digest)
	writeJSON(w, status, out.Function)
}

// checkReserved refuses a reserved concurrency that, with what the
// namespace's other functions reserve, exceeds the namespace's limit.
func (g *Gateway) checkReserved(ns string, cfg client.FunctionConfig) error {
	if cfg.ReservedConcurrency == nil {
		return nil
	}
	limit, reserved := g.cfg.Control.Store().ConcurrencyLimit(ns)
	if limit == 0 {
		return nil
	}
	if old, err := g.cfg.Control.Store().Function(client.QualifiedName(ns, cfg.Name)); err == nil && old.ReservedConcurrency != nil {
		reserved -= *old.ReservedConcurrency
	}
	if reserved+*cfg.ReservedConcurrency > limit {
		return badRequest(fmt.Sprintf("reserved_concurrency %d is more than namespace %s has left: its limit is %d and its other functions reserve %d",
			*cfg.ReservedConcurrency, ns, limit, reserved))
	}
	return nil
}

// scanPolicy is the namespace's code-scanning policy, or the server's.
func (g *Gateway) scanPolicy(ns string) scan.Policy {
	if n, err := g.cfg.Control.Store().Namespace(ns); err == nil && n.ScanPolicy != "" {
		if p, err := scan.ParsePolicy(n.ScanPolicy); err == nil {
			return p
		}
	}
	return g.cfg.ScanPolicy
}

// pickRuntime resolves "" to the newest runtime and checks a named one.
func (g *Gateway) pickRuntime(name string) (string, error) {
	avail := g.cfg.Placer.Runtimes()
	if len(avail) == 0 {
		return "", &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "no worker offers a Python runtime"}
	}
	if name == "" {
		return avail[0], nil
	}
	for _, a := range avail {
		if a == name {
			return name, nil
		}
	}
	return "", badRequest(fmt.Sprintf("unknown runtime %q: the workers can run %s", name, strings.Join(avail, ", ")))
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

// bodyError keeps a body-size error as such (413) and makes anything else
// a 400 with context.
func bodyError(err error, context string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("request body is over the %d MB limit", mbe.Limit>>20)}
	}
	return badRequest(context + ": " + err.Error())
}
