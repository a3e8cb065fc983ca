package gateway

import (
	"net/http"

	"nimbus/internal/model"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// publishVersion makes the next version of {name} from its head: 201
// with it, or 200 with the latest version when the head has not changed
// since.
func (g *Gateway) publishVersion(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Description string `json:"description"`
	}
	if r.ContentLength != 0 {
		if err := decodeStrict(w, r, &body, 4096, "the publish request"); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	v, created, err := g.svc.PublishVersion(r.Context(), callerNS(r.Context()), r.PathValue("name"), body.Description)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, client.PublishedVersion{Function: wire.Function(v), Created: created})
}

func (g *Gateway) listVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := g.svc.Versions(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	out := wire.List(vs, wire.Function)
	if out == nil {
		out = []client.Function{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

// deleteVersion removes version {version} of {name}: 409 while an alias
// routes to it.
func (g *Gateway) deleteVersion(w http.ResponseWriter, r *http.Request) {
	v, err := model.ParseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	if err := g.svc.DeleteVersion(r.Context(), callerNS(r.Context()), r.PathValue("name"), v); err != nil {
		writeError(w, g.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) listAliases(w http.ResponseWriter, r *http.Request) {
	as, err := g.svc.Aliases(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	out := wire.List(as, wire.Alias)
	if out == nil {
		out = []client.Alias{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"aliases": out})
}

func (g *Gateway) getAlias(w http.ResponseWriter, r *http.Request) {
	a, err := g.svc.Alias(callerNS(r.Context()), r.PathValue("name"), r.PathValue("alias"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Alias(a))
}

// createAlias makes an alias (POST, 201; 409 if the name is taken) and
// updateAlias replaces one (PUT /aliases/{alias}, 200; 404 if none).
func (g *Gateway) createAlias(w http.ResponseWriter, r *http.Request) { g.putAlias(w, r, true) }
func (g *Gateway) updateAlias(w http.ResponseWriter, r *http.Request) { g.putAlias(w, r, false) }

func (g *Gateway) putAlias(w http.ResponseWriter, r *http.Request, create bool) {
	var body client.Alias
	if err := decodeStrict(w, r, &body, 16<<10, "the alias"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if path := r.PathValue("alias"); !create && body.Name != "" && body.Name != path {
		writeError(w, g.log, badRequest("the body names alias "+body.Name+", the path "+path))
		return
	} else if !create {
		body.Name = path
	}
	a, err := aliasOf(r.PathValue("name"), body)
	if err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	stored, err := g.svc.PutAlias(r.Context(), callerNS(r.Context()), a, create)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	writeJSON(w, status, wire.Alias(stored))
}

// aliasOf reads an alias as the API writes it (versions as strings).
func aliasOf(function string, a client.Alias) (model.Alias, error) {
	v, err := model.ParseVersion(a.Version)
	if err != nil {
		return model.Alias{}, err
	}
	out := model.Alias{Function: function, Name: a.Name, Version: v, Description: a.Description}
	if a.Routing != nil {
		rv, err := model.ParseVersion(a.Routing.Version)
		if err != nil {
			return model.Alias{}, err
		}
		out.Routing = &model.AliasRouting{Version: rv, Weight: a.Routing.Weight}
	}
	return out, nil
}

func (g *Gateway) deleteAlias(w http.ResponseWriter, r *http.Request) {
	if err := g.svc.DeleteAlias(r.Context(), callerNS(r.Context()), r.PathValue("name"), r.PathValue("alias")); err != nil {
		writeError(w, g.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
