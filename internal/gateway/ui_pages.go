package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/console"
	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// The console's pages other than the functions': invocations,
// schedules, dead letters, subscriptions, and the admin pages.

func (g *Gateway) uiInvocations(w http.ResponseWriter, r *http.Request, p *console.Page) {
	v := &uiFunctionView{Page: p, CanWrite: p.CanWrite}
	g.fillInvocations(r, v, p.Namespace, "")
	p.Title, p.Data = "Invocations", v
	g.ui.Render(w, http.StatusOK, "invocations", p, "")
}

type uiInvocationView struct {
	Rec model.Invocation
	Log string
}

func (g *Gateway) uiInvocation(w http.ResponseWriter, r *http.Request, p *console.Page) {
	rec, err := g.record(r.PathValue("id"))
	if err == nil && rec.Namespace != p.Namespace {
		err = notFound("invocation %q", r.PathValue("id"))
	}
	if err != nil {
		p.Title = "No such invocation"
		g.uiFail(w, p, "error", err)
		return
	}
	log := service.LogOfRecord(rec).Log
	if stored, ok, _ := g.cfg.Logs.Get(rec.ID); ok && len(stored.Log) > len(log) {
		log = stored.Log
	}
	p.Title, p.Data = "Invocation "+rec.ID, uiInvocationView{Rec: rec, Log: log}
	g.ui.Render(w, http.StatusOK, "invocation", p, "")
}

// uiScheduleRow is one line of the schedules list.
type uiScheduleRow struct {
	Name, Function, Expression, TimeZone string
	Enabled                              bool
	Next, Last                           time.Time
}

type uiScheduleForm struct {
	Name, Function, Expression, TimeZone, Payload string
}

type uiPreview struct {
	Times []string
	Zone  string
	Error string
}

type uiSchedulesView struct {
	Page      *console.Page
	CanWrite  bool
	Rows      []uiScheduleRow
	Functions []string
	Form      uiScheduleForm
	Preview   uiPreview
}

func (g *Gateway) schedulesPage(p *console.Page, form uiScheduleForm) *console.Page {
	v := uiSchedulesView{Page: p, CanWrite: p.CanWrite, Form: form}
	for _, sc := range g.svc.Schedules(p.Namespace, "") {
		v.Rows = append(v.Rows, uiScheduleRow{Name: sc.Name, Function: sc.Function, Expression: sc.Expression, TimeZone: sc.Timezone,
			Enabled: !sc.Disabled, Next: sc.NextFire, Last: sc.LastSlot})
	}
	for _, fn := range g.svc.Functions(p.Namespace) {
		v.Functions = append(v.Functions, fn.Name)
	}
	if form.Expression != "" {
		v.Preview = g.preview(form.Expression, form.TimeZone)
	}
	p.Title, p.Data = "Schedules", v
	return p
}

func (g *Gateway) uiSchedules(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "schedules", g.schedulesPage(p, uiScheduleForm{}), "")
}

// preview is the next five fire times of expr in tz, or why it does
// not parse.
func (g *Gateway) preview(expr, tz string) uiPreview {
	times, err := g.svc.PreviewSchedule(strings.TrimSpace(expr), strings.TrimSpace(tz), time.Now(), 5)
	if err != nil {
		return uiPreview{Error: err.Error()}
	}
	out := uiPreview{Zone: "UTC"}
	if strings.TrimSpace(tz) != "" {
		out.Zone = strings.TrimSpace(tz)
	}
	for _, t := range times {
		out.Times = append(out.Times, t.Format("Mon 2006-01-02 15:04:05 MST"))
	}
	if len(out.Times) == 0 {
		out.Error = "this expression never fires again"
	}
	return out
}

// uiSchedulePreview answers the expression box as the user types: the
// preview fragment only.
func (g *Gateway) uiSchedulePreview(w http.ResponseWriter, r *http.Request, p *console.Page) {
	q := r.URL.Query()
	p.Data = g.preview(q.Get("expression"), q.Get("tz"))
	if q.Get("expression") == "" {
		p.Data = uiPreview{}
	}
	g.ui.Render(w, http.StatusOK, "preview", p, "fragment")
}

// uiScheduleChange creates (action=create), enables, disables or
// deletes a schedule.
func (g *Gateway) uiScheduleChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	form := uiScheduleForm{}
	var err error
	notice := ""
	switch action := r.PostFormValue("action"); action {
	case "create":
		form = uiScheduleForm{Name: name, Function: r.PostFormValue("function"), Expression: strings.TrimSpace(r.PostFormValue("expression")),
			TimeZone: strings.TrimSpace(r.PostFormValue("tz")), Payload: r.PostFormValue("payload")}
		sc := model.Schedule{Name: name, Function: form.Function, Expression: form.Expression, Timezone: form.TimeZone}
		if strings.TrimSpace(form.Payload) != "" {
			if !json.Valid([]byte(form.Payload)) {
				err = badRequest("the event is not valid JSON")
			}
			sc.Event = json.RawMessage(form.Payload)
		}
		if err == nil && !dnsLabelRe.MatchString(name) {
			err = badRequest(fmt.Sprintf("schedule name %q: %s", name, dnsLabelRule))
		}
		if err == nil {
			if _, serr := g.svc.Schedule(p.Namespace, name); serr == nil {
				err = &apiError{http.StatusConflict, "Conflict", "a schedule named " + name + " exists already: delete it first, or pick another name"}
			}
		}
		if err == nil {
			_, _, err = g.svc.PutSchedule(r.Context(), p.Namespace, sc)
		}
		notice = "Created schedule " + name + "."
	case "enable", "disable":
		_, err = g.svc.EnableSchedule(r.Context(), p.Namespace, name, action == "enable")
		notice = "Schedule " + name + " " + action + "d."
	case "delete":
		_, err = g.svc.DeleteSchedule(r.Context(), p.Namespace, name)
		notice = "Deleted schedule " + name + "."
	default:
		err = badRequest(fmt.Sprintf("unknown action %q", action))
	}
	if err != nil {
		g.uiFail(w, g.schedulesPage(p, form), "schedules", err)
		return
	}
	g.uiDone(w, g.schedulesPage(p, uiScheduleForm{}), "schedules", "/ui/schedules", notice)
}

type uiDeadLettersView struct {
	Page     *console.Page
	CanWrite bool
	Rows     []model.DeadLetter
}

func (g *Gateway) deadLettersPage(p *console.Page) *console.Page {
	p.Title, p.Data = "Dead letters", uiDeadLettersView{Page: p, CanWrite: p.CanWrite, Rows: g.svc.DeadLetters(p.Namespace, "")}
	return p
}

func (g *Gateway) uiDeadLetters(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "deadletters", g.deadLettersPage(p), "")
}

// uiRedrive queues dead letters again: id=, or all=yes.
func (g *Gateway) uiRedrive(w http.ResponseWriter, r *http.Request, p *console.Page) {
	var ids []string
	if id := r.PostFormValue("id"); id != "" {
		ids = []string{id}
	}
	n, err := g.svc.Redrive(r.Context(), p.Namespace, ids, r.PostFormValue("all") == "yes", "")
	if err != nil {
		g.uiFail(w, g.deadLettersPage(p), "deadletters", err)
		return
	}
	g.uiDone(w, g.deadLettersPage(p), "deadletters", "/ui/deadletters", fmt.Sprintf("Queued %d event(s) again.", n))
}

type uiSubscriptionsView struct {
	Subs       []model.Subscription
	Dests      []model.Function
	Deliveries []model.Invocation
}

func (g *Gateway) uiSubscriptions(w http.ResponseWriter, r *http.Request, p *console.Page) {
	v := uiSubscriptionsView{Subs: g.svc.Subscriptions(p.Namespace)}
	for _, fn := range g.svc.Functions(p.Namespace) {
		if fn.Destinations != nil && (fn.Destinations.OnSuccess != "" || fn.Destinations.OnFailure != "") {
			v.Dests = append(v.Dests, fn)
		}
	}
	for _, rec := range g.records(state.RecordQuery{Namespace: p.Namespace, Limit: 500}) {
		if rec.Destination != "" && len(v.Deliveries) < uiPageSize {
			v.Deliveries = append(v.Deliveries, rec)
		}
	}
	p.Title, p.Data = "Subscriptions", v
	g.ui.Render(w, http.StatusOK, "subscriptions", p, "")
}

type uiClusterView struct {
	Page      *console.Page
	Servers   []client.Server
	Standbys  []client.Server
	Workers   []client.Worker
	CanDrain  bool
	NotMember string
}

func (g *Gateway) clusterPage(p *console.Page) *console.Page {
	v := uiClusterView{Page: p, Workers: g.cfg.Placer.Workers(), CanDrain: g.cfg.Membership != nil, NotMember: g.notMember()}
	for _, s := range g.clusterServers() {
		if s.Role == "nonvoter" {
			v.Standbys = append(v.Standbys, s)
		}
		v.Servers = append(v.Servers, s)
	}
	p.Title, p.Data = "Cluster", v
	return p
}

func (g *Gateway) uiCluster(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "cluster", g.clusterPage(p), "")
}

// uiClusterChange drains or undrains a worker (action=drain|undrain,
// worker=ID).
func (g *Gateway) uiClusterChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	id := r.PostFormValue("worker")
	var err error
	switch action := r.PostFormValue("action"); {
	case g.cfg.Membership == nil:
		err = errNotACluster
	case action == "drain":
		err = g.cfg.Membership.DrainWorker(r.Context(), id)
	case action == "undrain":
		err = g.cfg.Membership.UndrainWorker(r.Context(), id)
	default:
		err = badRequest(fmt.Sprintf("unknown action %q", action))
	}
	if err != nil {
		g.uiFail(w, g.clusterPage(p), "cluster", err)
		return
	}
	g.uiDone(w, g.clusterPage(p), "cluster", "/ui/cluster", "Worker "+id+": "+r.PostFormValue("action")+" requested.")
}

type uiNamespaceRow struct {
	model.Namespace
	Functions int
}

func (g *Gateway) namespacesPage(p *console.Page) *console.Page {
	var rows []uiNamespaceRow
	for _, ns := range g.svc.Namespaces() {
		rows = append(rows, uiNamespaceRow{Namespace: ns, Functions: len(g.svc.Functions(ns.Name))})
	}
	p.Title, p.Data = "Namespaces", struct {
		Page *console.Page
		Rows []uiNamespaceRow
	}{p, rows}
	return p
}

func (g *Gateway) uiNamespaces(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "namespaces", g.namespacesPage(p), "")
}

func (g *Gateway) uiNamespaceChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	conc, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("concurrency")))
	if err != nil || conc < 0 {
		err = badRequest("the concurrency limit is a whole number, 0 for none")
	} else if !dnsLabelRe.MatchString(name) {
		err = badRequest(fmt.Sprintf("namespace name %q: %s", name, dnsLabelRule))
	} else if _, nerr := g.svc.Namespace(name); nerr == nil {
		err = &apiError{http.StatusConflict, "Conflict", "namespace " + name + " exists already"}
	} else {
		_, _, err = g.svc.PutNamespace(r.Context(), model.Namespace{Name: name, Concurrency: conc})
	}
	if err != nil {
		g.uiFail(w, g.namespacesPage(p), "namespaces", err)
		return
	}
	p.Namespaces = append(p.Namespaces, name)
	g.uiDone(w, g.namespacesPage(p), "namespaces", "/ui/namespaces", "Created namespace "+name+".")
}

type uiKeysView struct {
	Page             *console.Page
	Rows             []model.Key
	NewID, NewSecret string
}

func (g *Gateway) keysPage(p *console.Page, v uiKeysView) *console.Page {
	v.Page = p
	for _, k := range g.svc.Keys() {
		if k.Role != "join-worker" && k.Role != "join-server" {
			k.SecretHash = ""
			v.Rows = append(v.Rows, k)
		}
	}
	p.Title, p.Data = "API keys", v
	return p
}

func (g *Gateway) uiKeys(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "keys", g.keysPage(p, uiKeysView{}), "")
}

// uiKeyChange creates a key (its secret shown once, on this answer
// only) or revokes one (action=revoke, id=).
func (g *Gateway) uiKeyChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	if r.PostFormValue("action") == "revoke" {
		id := r.PostFormValue("id")
		if err := g.svc.RevokeKey(r.Context(), callerKey(r.Context()).ID, id); err != nil {
			g.uiFail(w, g.keysPage(p, uiKeysView{}), "keys", err)
			return
		}
		g.uiDone(w, g.keysPage(p, uiKeysView{}), "keys", "/ui/keys", "Revoked key "+id+".")
		return
	}
	req := service.KeyRequest{Role: r.PostFormValue("role"), Namespace: strings.TrimSpace(r.PostFormValue("namespace")),
		Note: r.PostFormValue("note"), Expires: strings.TrimSpace(r.PostFormValue("ttl"))}
	if req.Role == "admin" {
		req.Namespace = ""
	}
	token, key, err := g.svc.CreateKey(r.Context(), req)
	if err != nil {
		g.uiFail(w, g.keysPage(p, uiKeysView{}), "keys", err)
		return
	}
	g.uiDone(w, g.keysPage(p, uiKeysView{NewID: key.ID, NewSecret: token}), "keys", "/ui/keys", "")
}

func (g *Gateway) usersPage(p *console.Page) *console.Page {
	var rows []model.User
	for _, u := range g.svc.Users() {
		u.PasswordHash = ""
		rows = append(rows, u)
	}
	p.Title, p.Data = "Users", struct {
		Page *console.Page
		Rows []model.User
	}{p, rows}
	return p
}

func (g *Gateway) uiUsers(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "users", g.usersPage(p), "")
}

// uiUserChange creates a user, or deletes one (action=delete, name=).
func (g *Gateway) uiUserChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	var err error
	notice := ""
	if r.PostFormValue("action") == "delete" {
		err, notice = g.svc.DeleteUser(r.Context(), callerKey(r.Context()).ID, name), "Deleted user "+name+"."
	} else {
		req := service.UserRequest{Name: name, Role: r.PostFormValue("role"), Namespace: strings.TrimSpace(r.PostFormValue("namespace")), Password: r.PostFormValue("password")}
		if req.Role == "admin" {
			req.Namespace = ""
		}
		_, err = g.svc.CreateUser(r.Context(), req)
		notice = "Created user " + name + "."
	}
	if err != nil {
		g.uiFail(w, g.usersPage(p), "users", err)
		return
	}
	g.uiDone(w, g.usersPage(p), "users", "/ui/users", notice)
}

func (g *Gateway) uiAudit(w http.ResponseWriter, r *http.Request, p *console.Page) {
	entries := g.svc.Audit(200)
	slices.Reverse(entries) // newest first
	p.Title, p.Data = "Audit log", struct{ Rows []model.AuditEntry }{entries}
	g.ui.Render(w, http.StatusOK, "audit", p, "")
}

// uiPlaygroundView is the playground's form: a program to start with.
type uiPlaygroundView struct {
	Sample string
}

// playgroundSample is the program the playground opens with: it answers
// what the user types, so the input box has something to talk to.
const playgroundSample = `import sys

print("Type a line and press Send; End of input ends the program.")
for n, line in enumerate(sys.stdin, 1):
    print(f"{n}: {line.strip()[::-1]}")
print("bye", file=sys.stderr)
`

// uiPlayground is the interactive run page (spec §12, §14): an editor,
// Run, a terminal view of the output and an input box; the page's script
// speaks GET /v1/runs.
func (g *Gateway) uiPlayground(w http.ResponseWriter, r *http.Request, p *console.Page) {
	p.Title, p.Data = "Playground", uiPlaygroundView{Sample: playgroundSample}
	g.ui.Render(w, http.StatusOK, "playground", p, "")
}
