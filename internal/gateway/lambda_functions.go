package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// lambdaConfiguration is Lambda's FunctionConfiguration.
type lambdaConfiguration struct {
	FunctionName     string             `json:"FunctionName"`
	FunctionArn      string             `json:"FunctionArn"`
	Runtime          string             `json:"Runtime"`
	Role             string             `json:"Role"`
	Handler          string             `json:"Handler"`
	CodeSize         int64              `json:"CodeSize"`
	Description      string             `json:"Description"`
	Timeout          int                `json:"Timeout"`
	MemorySize       int                `json:"MemorySize"`
	LastModified     string             `json:"LastModified"`
	CodeSha256       string             `json:"CodeSha256"`
	Version          string             `json:"Version"`
	Environment      *lambdaEnvironment `json:"Environment,omitempty"`
	TracingConfig    map[string]string  `json:"TracingConfig"`
	RevisionID       string             `json:"RevisionId"`
	Layers           []lambdaLayer      `json:"Layers,omitempty"`
	State            string             `json:"State"`
	LastUpdateStatus string             `json:"LastUpdateStatus"`
	PackageType      string             `json:"PackageType"`
	Architectures    []string           `json:"Architectures"`
	EphemeralStorage map[string]int     `json:"EphemeralStorage"`
}

type lambdaEnvironment struct {
	Variables map[string]string `json:"Variables"`
}

type lambdaLayer struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}

// lambdaRole is the execution role every function reports: Nimbus has
// no IAM, so the Role a request names is accepted (the SDKs require it)
// and not kept.
func lambdaRole(ns string) string { return "arn:aws:iam::" + AccountID(ns) + ":role/nimbus-function" }

// configurationOf encodes f (the head or a published version) as Lambda
// does.
func (g *Gateway) configurationOf(f model.Function) lambdaConfiguration {
	c := lambdaConfiguration{
		FunctionName: f.Name, FunctionArn: g.functionARN(f.Namespace, f.Name, versionQualifier(f)),
		Runtime: f.Runtime, Role: lambdaRole(f.Namespace), Handler: f.Handler, CodeSize: f.CodeSize,
		Description: f.Description, Timeout: int(time.Duration(f.Timeout) / time.Second), MemorySize: f.MemoryMB,
		LastModified: lambdaTime(f.UpdatedAt), CodeSha256: lambdaSHA256(f.CodeSHA256), Version: model.VersionString(f.Version),
		TracingConfig: map[string]string{"Mode": "PassThrough"}, RevisionID: revisionID(f),
		State: "Active", LastUpdateStatus: "Successful", PackageType: "Zip", Architectures: []string{"x86_64"},
		EphemeralStorage: map[string]int{"Size": f.EphemeralMB},
	}
	if len(f.Env) > 0 {
		c.Environment = &lambdaEnvironment{Variables: f.Env}
	}
	for _, l := range f.LayerRefs {
		c.Layers = append(c.Layers, lambdaLayer{Arn: g.layerARN(f.Namespace, l.Name, l.Version), CodeSize: l.Unpacked})
	}
	return c
}

// versionQualifier is the qualifier of f's ARN: none for the head, its
// number for a version.
func versionQualifier(f model.Function) string {
	if f.Version == 0 {
		return ""
	}
	return model.VersionString(f.Version)
}

func (g *Gateway) layerARN(ns, name string, version int64) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:layer:%s:%d", g.lambdaRegion(), AccountID(ns), name, version)
}

// lambdaTime writes t as Lambda's LastModified.
func lambdaTime(t time.Time) string { return t.UTC().Format(lambdaTimeFormat) }

// lambdaSHA256 turns a hex SHA-256 into Lambda's CodeSha256 (base64).
func lambdaSHA256(hexDigest string) string {
	b, err := hex.DecodeString(hexDigest)
	if err != nil {
		return hexDigest
	}
	return base64.StdEncoding.EncodeToString(b)
}

// revisionID is the RevisionId of f: a UUID-shaped digest of what it is
// (namespace, name, version, revision, last change), so that every server
// says the same and any change makes a new one.
func revisionID(f model.Function) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d/%d/%d", f.Namespace, f.Name, f.Version, f.Revision, f.UpdatedAt.UnixNano()))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// lambdaCode is a request's Code (CreateFunction) or the body of
// UpdateFunctionCode: Nimbus takes the zip inline only.
type lambdaCode struct {
	ZipFile         string   `json:"ZipFile"` // base64
	S3Bucket        string   `json:"S3Bucket"`
	S3Key           string   `json:"S3Key"`
	S3ObjectVersion string   `json:"S3ObjectVersion"`
	ImageURI        string   `json:"ImageUri"`
	Publish         bool     `json:"Publish"`
	DryRun          bool     `json:"DryRun"`
	RevisionID      string   `json:"RevisionId"`
	Architectures   []string `json:"Architectures"`
}

// zip returns the code's zip, refusing the ways of sending code Nimbus
// does not take; field is what the request calls the code.
func (c lambdaCode) zip(field string) ([]byte, error) {
	switch {
	case c.ImageURI != "":
		return nil, invalidParam("%sImageUri: Nimbus runs zip packages only (PackageType Zip), not container images", field)
	case c.S3Bucket != "" || c.S3Key != "" || c.S3ObjectVersion != "":
		return nil, invalidParam("%sS3Bucket/S3Key: Nimbus takes the code inline only: send the zip as ZipFile", field)
	case c.ZipFile == "":
		return nil, invalidParam("%sZipFile is missing: send the function's zip (base64 in the JSON body)", field)
	}
	zip, err := base64.StdEncoding.DecodeString(c.ZipFile)
	if err != nil {
		return nil, invalidParam("%sZipFile is not valid base64 (%v): send the zip's bytes base64-encoded", field, err)
	}
	return zip, nil
}

// lambdaSettings are the fields of CreateFunction and
// UpdateFunctionConfiguration. Pointers tell a field that was sent from
// one that was not.
type lambdaSettings struct {
	Role             *string             `json:"Role"`
	Runtime          *string             `json:"Runtime"`
	Handler          *string             `json:"Handler"`
	Description      *string             `json:"Description"`
	Timeout          *int                `json:"Timeout"`
	MemorySize       *int                `json:"MemorySize"`
	Environment      *lambdaEnvironment  `json:"Environment"`
	EphemeralStorage *struct{ Size int } `json:"EphemeralStorage"`
	Layers           *[]string           `json:"Layers"`
	RevisionID       string              `json:"RevisionId"`

	// Refused when they ask for something Nimbus does not do.
	VpcConfig *struct {
		SubnetIDs        []string `json:"SubnetIds"`
		SecurityGroupIDs []string `json:"SecurityGroupIds"`
	} `json:"VpcConfig"`
	TracingConfig     *struct{ Mode string }      `json:"TracingConfig"`
	SnapStart         *struct{ ApplyOn string }   `json:"SnapStart"`
	KMSKeyArn         string                      `json:"KMSKeyArn"`
	FileSystemConfigs []json.RawMessage           `json:"FileSystemConfigs"`
	ImageConfig       json.RawMessage             `json:"ImageConfig"`
	DeadLetterConfig  *struct{ TargetArn string } `json:"DeadLetterConfig"`
	PackageType       string                      `json:"PackageType"`
	CodeSigningConfig string                      `json:"CodeSigningConfigArn"`
	Architectures     []string                    `json:"Architectures"`
}

// refused names the first field that asks for what Nimbus does not do.
func (s lambdaSettings) refused() error {
	switch {
	case s.VpcConfig != nil && (len(s.VpcConfig.SubnetIDs) > 0 || len(s.VpcConfig.SecurityGroupIDs) > 0):
		return invalidParam("VpcConfig: Nimbus does not attach functions to VPCs; leave VpcConfig out")
	case s.TracingConfig != nil && s.TracingConfig.Mode != "" && s.TracingConfig.Mode != "PassThrough":
		return invalidParam("TracingConfig Mode %q: Nimbus has no X-Ray tracing; only PassThrough", s.TracingConfig.Mode)
	case s.SnapStart != nil && s.SnapStart.ApplyOn != "" && s.SnapStart.ApplyOn != "None":
		return invalidParam("SnapStart ApplyOn %q: Nimbus has no SnapStart; only None", s.SnapStart.ApplyOn)
	case s.KMSKeyArn != "":
		return invalidParam("KMSKeyArn: Nimbus does not encrypt environment variables with KMS; leave KMSKeyArn out")
	case len(s.FileSystemConfigs) > 0:
		return invalidParam("FileSystemConfigs: Nimbus does not mount EFS file systems")
	case len(s.ImageConfig) > 0 && string(s.ImageConfig) != "null" && string(s.ImageConfig) != "{}":
		return invalidParam("ImageConfig: Nimbus runs zip packages only, not container images")
	case s.DeadLetterConfig != nil && s.DeadLetterConfig.TargetArn != "":
		return invalidParam("DeadLetterConfig TargetArn: Nimbus keeps dead letters itself (nimbus deadletters); use an OnFailure destination (PutFunctionEventInvokeConfig) to be told")
	case s.PackageType != "" && s.PackageType != "Zip":
		return invalidParam("PackageType %q: Nimbus runs zip packages only (PackageType Zip)", s.PackageType)
	case s.CodeSigningConfig != "":
		return invalidParam("CodeSigningConfigArn: Nimbus does not check code signatures")
	}
	for _, a := range s.Architectures {
		if a != "x86_64" {
			return invalidParam("Architectures %q: this Nimbus runs x86_64 only", a)
		}
	}
	return nil
}

// apply sets what s sends on cfg.
func (g *Gateway) applySettings(ns string, s lambdaSettings, cfg *model.FunctionConfig) error {
	if err := s.refused(); err != nil {
		return err
	}
	if s.Runtime != nil {
		if !strings.HasPrefix(*s.Runtime, "python3.") {
			return invalidParam("Runtime %q: Nimbus runs Python only (python3.X; nimbus runtimes lists those its workers offer)", *s.Runtime)
		}
		cfg.Runtime = *s.Runtime
	}
	if s.Handler != nil {
		if i := strings.LastIndexByte(*s.Handler, '.'); i <= 0 || i == len(*s.Handler)-1 {
			return invalidParam("Handler %q is not MODULE.FUNCTION (for example main.handler)", *s.Handler)
		}
		cfg.Handler = *s.Handler
	}
	if s.Description != nil {
		cfg.Description = *s.Description
	}
	if s.Timeout != nil {
		cfg.Timeout = model.Duration(time.Duration(*s.Timeout) * time.Second)
	}
	if s.MemorySize != nil {
		cfg.MemoryMB = *s.MemorySize
	}
	if s.Environment != nil {
		cfg.Env = s.Environment.Variables
	}
	if s.EphemeralStorage != nil {
		cfg.EphemeralMB = s.EphemeralStorage.Size
	}
	if s.Layers != nil {
		cfg.Layers = nil
		for _, arn := range *s.Layers {
			ref, err := g.layerRef(ns, arn)
			if err != nil {
				return err
			}
			cfg.Layers = append(cfg.Layers, ref)
		}
	}
	return nil
}

// layerRef reads a layer version's ARN
// (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION) as Nimbus's
// NAME:VERSION, a layer published in namespace ns.
func (g *Gateway) layerRef(ns, arn string) (string, error) {
	p := strings.Split(arn, ":")
	if len(p) != 8 || p[0] != "arn" || p[2] != "lambda" || p[5] != "layer" {
		return "", invalidParam("Layers: %q is not a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION)", arn)
	}
	if p[3] != g.lambdaRegion() || p[4] != AccountID(ns) {
		return "", invalidParam("Layers: %q is not a layer of this namespace (account %s, region %s): Nimbus mounts layers published in the function's namespace (nimbus layers)", arn, AccountID(ns), g.lambdaRegion())
	}
	return p[6] + ":" + p[7], nil
}

// checkRevision refuses a change made against another RevisionId than
// f's (Lambda's optimistic locking).
func checkRevision(f model.Function, want string) error {
	if want != "" && want != revisionID(f) {
		return lambdaErr(http.StatusPreconditionFailed, "PreconditionFailedException",
			"the RevisionId %s is not the function's current one (%s): get the function again and retry", want, revisionID(f))
	}
	return nil
}

func (g *Gateway) lambdaCreateFunction(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	var req struct {
		lambdaSettings
		FunctionName string            `json:"FunctionName"`
		Code         lambdaCode        `json:"Code"`
		Publish      bool              `json:"Publish"`
		Tags         map[string]string `json:"Tags"`
	}
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	name, qualifier, err := g.functionRef(ns, req.FunctionName)
	if err == nil && qualifier != "" {
		err = invalidParam("FunctionName %q: a new function takes no qualifier", req.FunctionName)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	cfg := model.FunctionConfig{Name: name}
	if err := g.applySettings(ns, req.lambdaSettings, &cfg); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	zip, err := req.Code.zip("Code.")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	if _, err := g.svc.Function(ns, name); err == nil {
		g.writeLambdaError(w, lambdaErr(http.StatusConflict, "ResourceConflictException", "Function already exist: %s", name))
		return
	}
	if err := g.svc.CheckTags(req.Tags); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	out, err := g.svc.Deploy(r.Context(), ns, cfg, zip, nil)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f := out.Function
	if len(req.Tags) > 0 {
		if err := g.svc.TagFunction(r.Context(), ns, name, req.Tags); err != nil {
			g.writeLambdaError(w, err)
			return
		}
	}
	if req.Publish {
		if f, _, err = g.svc.PublishVersion(r.Context(), ns, name, ""); err != nil {
			g.writeLambdaError(w, err)
			return
		}
	}
	writeLambdaJSON(w, http.StatusCreated, g.configurationOf(f))
}

// lambdaTarget is what a Lambda read names: function name's head, a
// version, or the version an alias names (its main one: reads do not
// follow an alias's routing).
func (g *Gateway) lambdaTarget(r *http.Request, ns, name, qualifier string) (model.Function, error) {
	q, err := model.ParseQualifier(qualifier)
	if err != nil {
		return model.Function{}, invalidParam("Qualifier: %v", err)
	}
	ref := name
	switch {
	case q.Alias != "":
		a, err := g.svc.Alias(ns, name, q.Alias)
		if err != nil {
			return model.Function{}, err
		}
		ref += ":" + model.VersionString(a.Version)
	case q.Version > 0:
		ref += ":" + qualifier
	}
	return caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return g.svc.Resolve(ns, ref) })
}

func (g *Gateway) lambdaGetFunction(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	name, qualifier, err := g.lambdaFunctionRef(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaTarget(r, ns, name, qualifier)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	tags, err := g.svc.FunctionTags(ns, name)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	out := map[string]any{
		"Configuration": g.configurationOf(f),
		"Code":          map[string]string{"RepositoryType": "S3"},
		"Tags":          tags,
	}
	if head, err := g.svc.Function(ns, name); err == nil && head.ReservedConcurrency != nil {
		out["Concurrency"] = map[string]int{"ReservedConcurrentExecutions": *head.ReservedConcurrency}
	}
	writeLambdaJSON(w, http.StatusOK, out)
}

func (g *Gateway) lambdaGetConfiguration(w http.ResponseWriter, r *http.Request) {
	name, qualifier, err := g.lambdaFunctionRef(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaTarget(r, callerNS(r.Context()), name, qualifier)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, g.configurationOf(f))
}

func (g *Gateway) lambdaListFunctions(w http.ResponseWriter, r *http.Request) {
	marker, max, err := lambdaPage(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	ns := callerNS(r.Context())
	v := r.URL.Query().Get("FunctionVersion")
	if v == "" {
		// $LATEST alone: a page read from the store's name order (the
		// marker is the last one's listKey).
		after, _, _ := strings.Cut(marker, ":")
		page, more := g.svc.FunctionsAfter(ns, after, max)
		next := ""
		if more {
			next = listKey(page[len(page)-1])
		}
		g.writeLambdaFunctions(w, page, next)
		return
	}
	fns := g.svc.Functions(ns)
	if v == "ALL" {
		var all []model.Function
		for _, f := range fns {
			all = append(all, f)
			vs, _ := g.svc.Versions(ns, f.Name)
			all = append(all, vs...)
		}
		fns = all
	} else {
		g.writeLambdaError(w, invalidParam("FunctionVersion %q: the only value is ALL", v))
		return
	}
	slices.SortStableFunc(fns, func(a, b model.Function) int { return strings.Compare(listKey(a), listKey(b)) })
	page, next := pageOf(fns, listKey, marker, max)
	g.writeLambdaFunctions(w, page, next)
}

// writeLambdaFunctions answers ListFunctions with page and the marker of
// the next page ("" for none).
func (g *Gateway) writeLambdaFunctions(w http.ResponseWriter, page []model.Function, next string) {
	out := struct {
		Functions  []lambdaConfiguration `json:"Functions"`
		NextMarker string                `json:"NextMarker,omitempty"`
	}{Functions: []lambdaConfiguration{}, NextMarker: next}
	for _, f := range page {
		out.Functions = append(out.Functions, g.configurationOf(f))
	}
	writeLambdaJSON(w, http.StatusOK, out)
}

// listKey orders functions by name, then version ($LATEST first).
func listKey(f model.Function) string { return fmt.Sprintf("%s:%020d", f.Name, f.Version) }

// lambdaHead is function name's head, refused when the request names a
// qualifier: what changes a function's code and configuration acts on
// $LATEST only.
func (g *Gateway) lambdaHead(r *http.Request, action string) (model.Function, error) {
	name, qualifier, err := g.lambdaFunctionRef(r)
	if err != nil {
		return model.Function{}, err
	}
	if qualifier != "" && qualifier != model.Latest {
		return model.Function{}, invalidParam("%s changes $LATEST only, not %s:%s (published versions do not change)", action, name, qualifier)
	}
	return caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return g.svc.Function(callerNS(r.Context()), name) })
}

func (g *Gateway) lambdaUpdateCode(w http.ResponseWriter, r *http.Request) {
	var req lambdaCode
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "UpdateFunctionCode")
	if err == nil {
		err = checkRevision(f, req.RevisionID)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	for _, a := range req.Architectures {
		if a != "x86_64" {
			g.writeLambdaError(w, invalidParam("Architectures %q: this Nimbus runs x86_64 only", a))
			return
		}
	}
	zip, err := req.zip("")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	if req.DryRun {
		if _, err := codepkg.Validate(zip, codepkg.DefaultLimits()); err != nil {
			g.writeLambdaError(w, err)
			return
		}
		writeLambdaJSON(w, http.StatusOK, g.configurationOf(f))
		return
	}
	g.lambdaRedeploy(w, r, f, f.FunctionConfig, zip, req.Publish)
}

// lambdaRedeploy deploys f again as a new revision with cfg (and zip,
// or f's own code when nil), publishes a version when asked, and
// answers with the configuration.
func (g *Gateway) lambdaRedeploy(w http.ResponseWriter, r *http.Request, f model.Function, cfg model.FunctionConfig, zip []byte, publish bool) {
	f, err := g.redeployConfig(r, f, cfg, zip)
	if err == nil && publish {
		f, _, err = g.svc.PublishVersion(r.Context(), f.Namespace, f.Name, "")
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, g.configurationOf(f))
}

// redeployConfig deploys f again with cfg, and zip or f's own code: a
// configuration's change is a new revision, as the console makes it.
func (g *Gateway) redeployConfig(r *http.Request, f model.Function, cfg model.FunctionConfig, zip []byte) (model.Function, error) {
	if zip == nil {
		var err error
		if zip, err = g.code(r.Context(), f.CodeSHA256); err != nil {
			return model.Function{}, err
		}
	}
	out, err := g.svc.Deploy(r.Context(), f.Namespace, cfg, zip, nil)
	return out.Function, err
}

func (g *Gateway) lambdaUpdateConfiguration(w http.ResponseWriter, r *http.Request) {
	var req lambdaSettings
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "UpdateFunctionConfiguration")
	if err == nil {
		err = checkRevision(f, req.RevisionID)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	cfg := f.FunctionConfig
	if err := g.applySettings(f.Namespace, req, &cfg); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	g.lambdaRedeploy(w, r, f, cfg, nil, false)
}

func (g *Gateway) lambdaDeleteFunction(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	name, qualifier, err := g.lambdaFunctionRef(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	if qualifier != "" {
		q, _ := model.ParseQualifier(qualifier)
		switch {
		case q.Alias != "":
			err = invalidParam("Qualifier %q names an alias: delete it with DeleteAlias", qualifier)
		case q.Latest:
			err = invalidParam("Qualifier $LATEST is the function itself: delete the function without a Qualifier")
		default:
			err = g.svc.DeleteVersion(r.Context(), ns, name, q.Version)
		}
		if err != nil {
			g.writeLambdaError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if _, err := g.svc.RemoveFunction(r.Context(), ns, name, false); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			err = lambdaErr(http.StatusNotFound, "ResourceNotFoundException", "Function not found: %s", g.functionARN(ns, name, ""))
		}
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
