package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"nimbus/internal/model"
)

func (g *Gateway) lambdaPublishVersion(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CodeSha256  string `json:"CodeSha256"`
		Description string `json:"Description"`
		RevisionID  string `json:"RevisionId"`
	}
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "PublishVersion")
	if err == nil {
		err = checkRevision(f, req.RevisionID)
	}
	if err == nil && req.CodeSha256 != "" && req.CodeSha256 != lambdaSHA256(f.CodeSHA256) {
		err = invalidParam("CodeSha256 %s is not the code of $LATEST (%s): the code changed since", req.CodeSha256, lambdaSHA256(f.CodeSHA256))
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	v, _, err := g.svc.PublishVersion(r.Context(), f.Namespace, f.Name, req.Description)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusCreated, g.configurationOf(v))
}

// lambdaListVersions lists $LATEST, then the published versions, as
// Lambda does.
func (g *Gateway) lambdaListVersions(w http.ResponseWriter, r *http.Request) {
	marker, max, err := lambdaPage(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "ListVersionsByFunction")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	vs, err := g.svc.Versions(f.Namespace, f.Name)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	page, next := pageOf(append([]model.Function{f}, vs...), listKey, marker, max)
	out := struct {
		Versions   []lambdaConfiguration `json:"Versions"`
		NextMarker string                `json:"NextMarker,omitempty"`
	}{Versions: []lambdaConfiguration{}, NextMarker: next}
	for _, v := range page {
		out.Versions = append(out.Versions, g.configurationOf(v))
	}
	writeLambdaJSON(w, http.StatusOK, out)
}

// lambdaAlias is Lambda's AliasConfiguration.
type lambdaAlias struct {
	AliasArn        string              `json:"AliasArn"`
	Name            string              `json:"Name"`
	FunctionVersion string              `json:"FunctionVersion"`
	Description     string              `json:"Description"`
	RoutingConfig   *lambdaAliasRouting `json:"RoutingConfig,omitempty"`
	RevisionID      string              `json:"RevisionId"`
}

type lambdaAliasRouting struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
}

func (g *Gateway) aliasOf(a model.Alias) lambdaAlias {
	out := lambdaAlias{AliasArn: g.functionARN(a.Namespace, a.Function, a.Name), Name: a.Name,
		FunctionVersion: model.VersionString(a.Version), Description: a.Description, RevisionID: aliasRevisionID(a)}
	if a.Routing != nil {
		out.RoutingConfig = &lambdaAliasRouting{AdditionalVersionWeights: map[string]float64{
			model.VersionString(a.Routing.Version): a.Routing.Weight}}
	}
	return out
}

// aliasRevisionID is an alias's RevisionId: a UUID-shaped digest of it
// and its last change.
func aliasRevisionID(a model.Alias) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s/%d", a.Namespace, a.Function, a.Name, a.UpdatedAt.UnixNano()))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// aliasRequest is the body of CreateAlias and UpdateAlias.
type aliasRequest struct {
	Name            string              `json:"Name"`
	FunctionVersion *string             `json:"FunctionVersion"`
	Description     *string             `json:"Description"`
	RoutingConfig   *lambdaAliasRouting `json:"RoutingConfig"`
	RevisionID      string              `json:"RevisionId"`
}

// apply sets what req sends on a.
func (req aliasRequest) apply(a *model.Alias) error {
	if req.FunctionVersion != nil {
		v, err := model.ParseVersion(*req.FunctionVersion)
		if err != nil {
			return invalidParam("FunctionVersion: %v", err)
		}
		a.Version = v
	}
	if req.Description != nil {
		a.Description = *req.Description
	}
	if rc := req.RoutingConfig; rc != nil {
		a.Routing = nil
		if len(rc.AdditionalVersionWeights) > 1 {
			return invalidParam("RoutingConfig AdditionalVersionWeights names %d versions: an alias routes to one additional version at most", len(rc.AdditionalVersionWeights))
		}
		for vs, weight := range rc.AdditionalVersionWeights {
			v, err := strconv.ParseInt(vs, 10, 64)
			if err != nil || v < 1 {
				return invalidParam("RoutingConfig AdditionalVersionWeights: %q is not a published version number", vs)
			}
			if !(weight >= 0 && weight < 1) {
				return invalidParam("RoutingConfig AdditionalVersionWeights: the weight %v of version %d must be from 0 up to (not including) 1", weight, v)
			}
			if weight > 0 {
				a.Routing = &model.AliasRouting{Version: v, Weight: weight}
			}
		}
	}
	return nil
}

func (g *Gateway) lambdaCreateAlias(w http.ResponseWriter, r *http.Request) {
	var req aliasRequest
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "CreateAlias")
	if err == nil && req.FunctionVersion == nil {
		err = invalidParam("FunctionVersion is missing: the version the alias names ($LATEST or a number)")
	}
	a := model.Alias{Function: f.Name, Name: req.Name}
	if err == nil {
		err = req.apply(&a)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	a, err = g.svc.PutAlias(r.Context(), f.Namespace, a, true)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusCreated, g.aliasOf(a))
}

func (g *Gateway) lambdaGetAlias(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaHead(r, "GetAlias")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	a, err := g.svc.Alias(f.Namespace, f.Name, r.PathValue("alias"))
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, g.aliasOf(a))
}

func (g *Gateway) lambdaUpdateAlias(w http.ResponseWriter, r *http.Request) {
	var req aliasRequest
	if err := decodeLambda(r, &req); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "UpdateAlias")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	a, err := g.svc.Alias(f.Namespace, f.Name, r.PathValue("alias"))
	if err == nil && req.RevisionID != "" && req.RevisionID != aliasRevisionID(a) {
		err = lambdaErr(http.StatusPreconditionFailed, "PreconditionFailedException",
			"the RevisionId %s is not the alias's current one (%s): get the alias again and retry", req.RevisionID, aliasRevisionID(a))
	}
	if err == nil {
		err = req.apply(&a)
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	if a, err = g.svc.PutAlias(r.Context(), f.Namespace, a, false); err != nil {
		g.writeLambdaError(w, err)
		return
	}
	writeLambdaJSON(w, http.StatusOK, g.aliasOf(a))
}

func (g *Gateway) lambdaDeleteAlias(w http.ResponseWriter, r *http.Request) {
	f, err := g.lambdaHead(r, "DeleteAlias")
	if err == nil {
		err = g.svc.DeleteAlias(r.Context(), f.Namespace, f.Name, r.PathValue("alias"))
	}
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) lambdaListAliases(w http.ResponseWriter, r *http.Request) {
	marker, max, err := lambdaPage(r)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	f, err := g.lambdaHead(r, "ListAliases")
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	all, err := g.svc.Aliases(f.Namespace, f.Name)
	if err != nil {
		g.writeLambdaError(w, err)
		return
	}
	var list []model.Alias
	only := r.URL.Query().Get("FunctionVersion")
	for _, a := range all {
		if only == "" || model.VersionString(a.Version) == only {
			list = append(list, a)
		}
	}
	page, next := pageOf(list, func(a model.Alias) string { return a.Name }, marker, max)
	out := struct {
		Aliases    []lambdaAlias `json:"Aliases"`
		NextMarker string        `json:"NextMarker,omitempty"`
	}{Aliases: []lambdaAlias{}, NextMarker: next}
	for _, a := range page {
		out.Aliases = append(out.Aliases, g.aliasOf(a))
	}
	writeLambdaJSON(w, http.StatusOK, out)
}
