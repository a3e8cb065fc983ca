package gateway

import (
	"net/http"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

func (g *Gateway) listSources(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sources": wire.List(g.svc.Sources(callerNS(r.Context()), r.URL.Query().Get("function")), wire.Source)})
}

func (g *Gateway) getSource(w http.ResponseWriter, r *http.Request) {
	src, err := g.svc.Source(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Source(src))
}

// putSource creates or replaces an event source mapping (see
// service.PutSource).
func (g *Gateway) putSource(w http.ResponseWriter, r *http.Request) {
	var src client.Source
	if err := decodeStrict(w, r, &src, 1<<20, "event source mapping"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := nameFromPath("event source mapping", &src.Name, r.PathValue("name"), dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, created, err := g.svc.PutSource(r.Context(), callerNS(r.Context()), wire.ModelSource(src))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, wire.Source(stored))
}

func (g *Gateway) deleteSource(w http.ResponseWriter, r *http.Request) {
	src, err := g.svc.DeleteSource(r.Context(), callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Source(src))
}

func (g *Gateway) enableSource(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src, err := g.svc.EnableSource(r.Context(), callerNS(r.Context()), r.PathValue("name"), enabled)
		if err != nil {
			writeError(w, g.log, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.Source(src))
	}
}
