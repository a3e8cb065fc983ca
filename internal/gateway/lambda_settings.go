package gateway

import (
	"net/http"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
)

// Reserved concurrency: the function's reserved_concurrency, changed by
// a new revision as a deploy changes it.

func (g *Gateway) lambdaPutConcurrency(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions"`
	}
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "PutFunctionConcurrency")
	if err == nil && req.ReservedConcurrentExecutions == nil {
		err = invalidParam("ReservedConcurrentExecutions is missing")
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	cfg := f.FunctionConfig
	n := *req.ReservedConcurrentExecutions
	cfg.ReservedConcurrency = &n
	if _, err := g.redeployConfig(r, f, cfg, nil); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, map[string]int{"ReservedConcurrentExecutions": n})
}

func (g *Gateway) lambdaGetConcurrency(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaHead(r, "GetFunctionConcurrency")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	out := map[string]int{}
	if f.ReservedConcurrency != nil {
		out["ReservedConcurrentExecutions"] = *f.ReservedConcurrency
	}
	writeLambdaJSON(w, http.StatusOK, out)
}

func (g *Gateway) lambdaDeleteConcurrency(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaHead(r, "DeleteFunctionConcurrency")
	if err == nil && f.ReservedConcurrency != nil {
		cfg := f.FunctionConfig
		cfg.ReservedConcurrency, cfg.Provisioned = nil, 0
		_, err = g.redeployConfig(r, f, cfg, nil)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Event invoke configuration: the function's retries, max_event_age and
// destinations (Nimbus keeps one for the function, not one per version
// or alias).

type lambdaEventInvokeConfig struct {
	LastModified             float64                  `json:"LastModified"` // Unix seconds
	FunctionArn              string                   `json:"FunctionArn"`
	MaximumRetryAttempts     *int                     `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int                     `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        *lambdaDestinationConfig `json:"DestinationConfig,omitempty"`
}

type lambdaDestinationConfig struct {
	OnSuccess *lambdaDestination `json:"OnSuccess,omitempty"`
	OnFailure *lambdaDestination `json:"OnFailure,omitempty"`
}

type lambdaDestination struct {
	Destination string `json:"Destination"`
}

// hasEventInvokeConfig reports whether f sets any of its asynchronous
// settings (otherwise Lambda's GetFunctionEventInvokeConfig finds none).
func hasEventInvokeConfig(f model.Function) bool {
	return f.Retries != nil || f.MaxEventAge != 0 || f.Destinations != nil && *f.Destinations != (model.Destinations{})
}

func (g *Gateway) eventInvokeConfigOf(f model.Function) lambdaEventInvokeConfig {
	out := lambdaEventInvokeConfig{LastModified: float64(f.UpdatedAt.UnixMilli()) / 1000, FunctionArn: g.functionARN(f.Namespace, f.Name, model.Latest),
		MaximumRetryAttempts: f.Retries}
	if f.MaxEventAge != 0 {
		s := int(time.Duration(f.MaxEventAge) / time.Second)
		out.MaximumEventAgeInSeconds = &s
	}
	if d := f.Destinations; d != nil && *d != (model.Destinations{}) {
		out.DestinationConfig = &lambdaDestinationConfig{}
		if d.OnSuccess != "" {
			out.DestinationConfig.OnSuccess = &lambdaDestination{g.destinationARN(f.Namespace, d.OnSuccess)}
		}
		if d.OnFailure != "" {
			out.DestinationConfig.OnFailure = &lambdaDestination{g.destinationARN(f.Namespace, d.OnFailure)}
		}
	}
	return out
}

// destinationARN writes a Nimbus destination as the Lambda API does: a
// function's as its ARN, a URL (a Nimbus destination Lambda lacks) as it
// is.
func (g *Gateway) destinationARN(ns, d string) string {
	if name, ok := strings.CutPrefix(d, "function:"); ok {
		return g.functionARN(ns, name, "")
	}
	return d
}

// destinationOf reads a destination ARN: a function of namespace ns
// becomes function:NAME; an http(s) URL stays one (a Nimbus extension);
// queues, topics, buses and buckets are refused, naming the service.
func (g *Gateway) destinationOf(ns, field, arn string) (string, error) {
	if strings.HasPrefix(arn, "https://") || strings.HasPrefix(arn, "http://") {
		return arn, nil
	}
	p := strings.Split(arn, ":")
	if len(p) >= 3 && p[0] == "arn" && p[2] != "lambda" {
		return "", invalidParam("%s %q: Nimbus sends destinations to functions (or http(s) URLs), not to %s; use a function of this namespace", field, arn, strings.ToUpper(p[2]))
	}
	name, qualifier, err := g.functionRef(ns, arn)
	if err != nil {
		return "", err
	}
	if qualifier != "" && qualifier != model.Latest {
		return "", invalidParam("%s %q: a destination is a function, not one of its versions or aliases", field, arn)
	}
	return "function:" + name, nil
}

// lambdaEventInvokeHead is the function whose event invoke config the
// request names: only the unqualified function (or $LATEST).
func (g *Gateway) lambdaEventInvokeHead(r *http.Request, action string) (model.Function, error) {
	return g.lambdaHead(r, action)
}

// lambdaPutEventInvokeConfig is PutFunctionEventInvokeConfig (replace:
// what the request leaves out returns to its default) and
// UpdateFunctionEventInvokeConfig (what it leaves out stays).
func (g *Gateway) lambdaPutEventInvokeConfig(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MaximumRetryAttempts     *int                     `json:"MaximumRetryAttempts"`
			MaximumEventAgeInSeconds *int                     `json:"MaximumEventAgeInSeconds"`
			DestinationConfig        *lambdaDestinationConfig `json:"DestinationConfig"`
		}
		if err := decodeLambda(r, &req); err != nil {
			g.writeLambdaError(w, err)
			return
		}
		f, err := g.lambdaEventInvokeHead(r, "PutFunctionEventInvokeConfig")
		if err != nil {
			g.writeLambdaError(w, err)
			return
		}
		cfg := f.FunctionConfig
		if replace {
			cfg.Retries, cfg.MaxEventAge, cfg.Destinations = nil, 0, nil
		}
		if req.MaximumRetryAttempts != nil {
			n := *req.MaximumRetryAttempts
			cfg.Retries = &n
		}
		if req.MaximumEventAgeInSeconds != nil {
			cfg.MaxEventAge = model.Duration(time.Duration(*req.MaximumEventAgeInSeconds) * time.Second)
		}
		if dc := req.DestinationConfig; dc != nil {
			d := model.Destinations{}
			if cfg.Destinations != nil {
				d = *cfg.Destinations
			}
			for _, x := range []struct {
				field string
				in    *lambdaDestination
				out   *string
			}{{"DestinationConfig.OnSuccess", dc.OnSuccess, &d.OnSuccess}, {"DestinationConfig.OnFailure", dc.OnFailure, &d.OnFailure}} {
				if x.in == nil {
					continue
				}
				*x.out = ""
				if x.in.Destination != "" {
					if *x.out, err = g.destinationOf(f.Namespace, x.field, x.in.Destination); err != nil {
						g.writeLambdaError(w, err)
						return
					}
				}
			}
			cfg.Destinations = &d
		}
		if err := codepkg.ValidateConfig(cfg); err != nil {
			g.writeLambdaError(w, err)
			return
		}
		f, err = g.redeployConfig(r, f, cfg, nil)
		if err != nil {
			g.writeLambdaError(w, err)
			return
		}
		writeLambdaJSON(w, http.StatusOK, g.eventInvokeConfigOf(f))
	}
}

func (g *Gateway) lambdaGetEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaEventInvokeHead(r, "GetFunctionEventInvokeConfig")
	if err == nil && !hasEventInvokeConfig(f) {
		err = lambdaErr(http.StatusNotFound, "ResourceNotFoundException", "The function %s doesn't have an EventInvokeConfig", g.functionARN(f.Namespace, f.Name, model.Latest))
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, g.eventInvokeConfigOf(f))
}

func (g *Gateway) lambdaListEventInvokeConfigs(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaEventInvokeHead(r, "ListFunctionEventInvokeConfigs")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	list := []lambdaEventInvokeConfig{}
	if hasEventInvokeConfig(f) {
		list = append(list, g.eventInvokeConfigOf(f))
	}
	writeLambdaJSON(w, http.StatusOK, map[string]any{"FunctionEventInvokeConfigs": list})
}

func (g *Gateway) lambdaDeleteEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaEventInvokeHead(r, "DeleteFunctionEventInvokeConfig")
	if err == nil && !hasEventInvokeConfig(f) {
		err = lambdaErr(http.StatusNotFound, "ResourceNotFoundException", "The function %s doesn't have an EventInvokeConfig", g.functionARN(f.Namespace, f.Name, model.Latest))
	}
	if err == nil {
		cfg := f.FunctionConfig
		cfg.Retries, cfg.MaxEventAge, cfg.Destinations = nil, 0, nil
		_, err = g.redeployConfig(r, f, cfg, nil)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// lambdaAccountSettings is GetAccountSettings: the namespace's limits and
// what its functions use.
func (g *Gateway) lambdaAccountSettings(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	fns := g.svc.Functions(ns)
	var total int64
	for _, f := range fns {
		total += f.CodeSize
		vs, _ := g.svc.Versions(ns, f.Name)
		for _, v := range vs {
			total += v.CodeSize
		}
	}
	limits := codepkg.DefaultLimits()
	limit := map[string]any{
		"TotalCodeSize":    int64(75) << 30,
		"CodeSizeUnzipped": limits.MaxUnzipped,
		"CodeSizeZipped":   limits.MaxZip,
	}
	if concurrency, reserved := g.cfg.Control.Store().ConcurrencyLimit(ns); concurrency > 0 {
		limit["ConcurrentExecutions"] = concurrency
		limit["UnreservedConcurrentExecutions"] = concurrency - reserved
	}
	writeLambdaJSON(w, http.StatusOK, map[string]any{
		"AccountLimit": limit,
		"AccountUsage": map[string]int64{"TotalCodeSize": total, "FunctionCount": int64(len(fns))},
	})
}

// Tags: only functions (unqualified function ARNs) have them.

// taggedFunction reads the {arn} of a tags route: an unqualified function
// ARN of the caller's namespace.
func (g *Gateway) taggedFunction(r *http.Request) (model.Function, error) {
	arn := r.PathValue("arn")
	if !strings.HasPrefix(arn, "arn:") {
		return model.Function{}, invalidParam("%q is not an ARN: tags take a function's ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)", arn)
	}
	ns := callerNS(r.Context())
	name, qualifier, err := g.functionRef(ns, arn)
	if err == nil && qualifier != "" {
		err = invalidParam("%q: tags belong to the function, not to a version or alias: use the unqualified ARN", arn)
	}
	if err != nil {
		return model.Function{}, err
	}
	return caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return g.svc.Function(ns, name) })
}

func (g *Gateway) lambdaListTags(w http.ResponseWriter, r *http.Request) {
	f, err := g.taggedFunction(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	tags, err := g.svc.FunctionTags(f.Namespace, f.Name)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, map[string]any{"Tags": tags})
}

func (g *Gateway) lambdaTagResource(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tags map[string]string `json:"Tags"`
	}
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.taggedFunction(r)
	if err == nil {
		err = g.svc.TagFunction(r.Context(), f.Namespace, f.Name, req.Tags)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) lambdaUntagResource(w http.ResponseWriter, r *http.Request) {
	f, err := g.taggedFunction(r)
	if err == nil {
		err = g.svc.UntagFunction(r.Context(), f.Namespace, f.Name, r.URL.Query()["tagKeys"])
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
