package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/notify"
	"nimbus/pkg/client"
)

func (g *Gateway) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	out := []client.Subscription{}
	for _, s := range g.cfg.Control.Store().Subscriptions() {
		if client.NamespaceOf(s.Namespace) == ns {
			out = append(out, s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

// createSubscription stores {function?, on: [...], webhook | email}.
func (g *Gateway) createSubscription(w http.ResponseWriter, r *http.Request) {
	var s client.Subscription
	if err := decodeStrict(w, r, &s, 64<<10, "subscription"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if len(s.On) == 0 {
		writeError(w, g.log, badRequest(fmt.Sprintf("say on which conditions to notify: on: %v", notify.Conditions)))
		return
	}
	for _, c := range s.On {
		if !slices.Contains(notify.Conditions, c) {
			writeError(w, g.log, badRequest(fmt.Sprintf("condition %q is not one of %v", c, notify.Conditions)))
			return
		}
	}
	if (s.Webhook == "") == (s.Email == "") {
		writeError(w, g.log, badRequest("give exactly one of webhook (a URL) and email (an address)"))
		return
	}
	if s.Webhook != "" {
		if u, err := url.Parse(s.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			writeError(w, g.log, badRequest(fmt.Sprintf("webhook %q is not an http(s) URL", s.Webhook)))
			return
		}
	}
	warning := ""
	if s.Email != "" {
		if _, err := mail.ParseAddress(s.Email); err != nil {
			writeError(w, g.log, badRequest(fmt.Sprintf("email %q is not an address: %v", s.Email, err)))
			return
		}
		switch {
		case g.cfg.Mail:
		case g.cfg.Membership == nil:
			// A single node sends every notification itself: without a
			// relay no mail could ever go out.
			writeError(w, g.log, badRequest("e-mail notifications need an SMTP relay, and this server has none: "+
				"restart it with --smtp-addr HOST:PORT (and --smtp-from), or subscribe a --webhook"))
			return
		default:
			// The leader sends notifications; other servers may have a
			// relay that this one cannot see.
			warning = "this server has no --smtp-addr: e-mail notifications are sent by the leader, " +
				"so they go out only while a server started with --smtp-addr leads"
		}
	}
	s.Warning = "" // an answer field, never stored
	s.Namespace = callerNS(r.Context())
	if s.Function != "" {
		if _, err := g.cfg.Control.Store().Function(client.QualifiedName(s.Namespace, s.Function)); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	b := make([]byte, 8)
	rand.Read(b)
	s.ID, s.Created = "sub-"+hex.EncodeToString(b), time.Now().UTC()
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.PutSubscription{Subscription: s}); err != nil {
		writeError(w, g.log, err)
		return
	}
	s.Warning = warning
	writeJSON(w, http.StatusCreated, s)
}

func (g *Gateway) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !slices.ContainsFunc(g.cfg.Control.Store().Subscriptions(), func(s client.Subscription) bool {
		return s.ID == id && client.NamespaceOf(s.Namespace) == callerNS(r.Context())
	}) {
		writeError(w, g.log, notFound("subscription %q", id))
		return
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.DeleteSubscription{ID: r.PathValue("id")}); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("id")})
}
