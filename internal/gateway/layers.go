package gateway

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"nimbus/internal/codepkg"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// publishLayer stores the body, a zip (Content-Type application/zip),
// as the next version of layer {name}; ?runtime= (repeated) names the
// runtimes it is built for, ?description= describes it. 201 with the
// version.
func (g *Gateway) publishLayer(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/zip" {
		writeError(w, g.log, &apiError{http.StatusUnsupportedMediaType, "UnsupportedMediaType",
			"a layer is published as its zip, with Content-Type: application/zip"})
		return
	}
	zip, err := io.ReadAll(http.MaxBytesReader(w, r.Body, codepkg.LayerLimits().MaxZip))
	if err != nil {
		writeError(w, g.log, clientClosed(r, err))
		return
	}
	q := r.URL.Query()
	l, err := g.svc.PublishLayer(r.Context(), callerNS(r.Context()), r.PathValue("name"), q["runtime"], q.Get("description"), zip)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, wire.Layer(l))
}

// listLayers lists the namespace's layer versions (?name= for one).
func (g *Gateway) listLayers(w http.ResponseWriter, r *http.Request) {
	layers := wire.List(g.svc.Layers(callerNS(r.Context()), r.URL.Query().Get("name")), wire.Layer)
	if layers == nil {
		layers = []client.Layer{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"layers": layers})
}

// getLayer answers a layer's version ({version}, or the latest).
func (g *Gateway) getLayer(w http.ResponseWriter, r *http.Request) {
	version, ok := layerVersion(w, g, r)
	if !ok {
		return
	}
	l, err := g.svc.Layer(callerNS(r.Context()), r.PathValue("name"), version)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Layer(l))
}

// deleteLayer removes a layer version no function mounts (409 naming
// those that do).
func (g *Gateway) deleteLayer(w http.ResponseWriter, r *http.Request) {
	version, ok := layerVersion(w, g, r)
	if !ok {
		return
	}
	if err := g.svc.DeleteLayer(r.Context(), callerNS(r.Context()), r.PathValue("name"), version); err != nil {
		writeError(w, g.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// layerVersion reads {version}: 0 when the route has none.
func layerVersion(w http.ResponseWriter, g *Gateway, r *http.Request) (int64, bool) {
	v := r.PathValue("version")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		writeError(w, g.log, badRequest(fmt.Sprintf("layer version %q must be a number from 1", v)))
		return 0, false
	}
	return n, true
}
