package gateway

import (
	"fmt"
	"net/http"

	"nimbus/internal/auth"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// listNamespaces shows every namespace to an admin, and its own to any
// other key.
func (g *Gateway) listNamespaces(w http.ResponseWriter, r *http.Request) {
	key := callerKey(r.Context())
	out := []client.Namespace{}
	for _, ns := range g.svc.Namespaces() {
		if key.Role == auth.RoleAdmin || ns.Name == client.NamespaceOf(key.Namespace) {
			out = append(out, wire.Namespace(ns))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"namespaces": out})
}

func (g *Gateway) getNamespace(w http.ResponseWriter, r *http.Request) {
	key, name := callerKey(r.Context()), r.PathValue("name")
	if key.Role != auth.RoleAdmin && name != client.NamespaceOf(key.Namespace) {
		writeError(w, g.log, &apiError{http.StatusForbidden, "Forbidden",
			fmt.Sprintf("key %s belongs to namespace %q and may not read %q", key.ID, client.NamespaceOf(key.Namespace), name)})
		return
	}
	ns, err := g.svc.Namespace(name)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Namespace(ns))
}

// putNamespace creates a namespace or changes its settings:
// {"concurrency"?, "scan_policy"?}.
func (g *Gateway) putNamespace(w http.ResponseWriter, r *http.Request) {
	var ns client.Namespace
	if r.ContentLength != 0 { // an empty body: a namespace with defaults
		if err := decodeStrict(w, r, &ns, 4<<10, "namespace"); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	name := r.PathValue("name")
	if err := nameFromPath("namespace", &ns.Name, name, dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, created, err := g.svc.PutNamespace(r.Context(), wire.ModelNamespace(ns))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, wire.Namespace(stored))
}

// deleteNamespace removes an empty namespace (not default); keys bound to
// it stop working there, as it no longer exists.
func (g *Gateway) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := g.svc.DeleteNamespace(r.Context(), name); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}
