package gateway

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/console"
	"nimbus/internal/model"
	"nimbus/internal/pycheck"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/internal/wire"
)

// uiPageSize is how many rows a console list shows at a time.
const uiPageSize = 50

// uiFunctionRow is one line of the functions list.
type uiFunctionRow struct {
	Name, Runtime       string
	MemoryMB            int
	Revision            int64
	LastInvoked         time.Time
	Invocations, Errors int64
	Spark               []float64 // invocations per hour over the last day
}

type uiFunctionsView struct {
	Query      string
	Rows       []uiFunctionRow
	Prev, Next string
	DeployOpen bool
	DeployName string
}

// uiFunctions lists the namespace's functions a page at a time (by name,
// after ?after=), filtered by ?q=.
func (g *Gateway) uiFunctions(w http.ResponseWriter, r *http.Request, p *console.Page) {
	g.ui.Render(w, http.StatusOK, "functions", g.functionsPage(r, p, uiFunctionsView{}), "")
}

func (g *Gateway) functionsPage(r *http.Request, p *console.Page, v uiFunctionsView) *console.Page {
	q := r.URL.Query()
	v.Query = strings.TrimSpace(q.Get("q"))
	after := q.Get("after")
	var page []model.Function
	more := false
	if v.Query == "" {
		// A page read from the store's name order, not a copy of every
		// function filtered.
		page, more = g.svc.FunctionsAfter(p.Namespace, after, uiPageSize)
	} else {
		for _, fn := range g.svc.Functions(p.Namespace) { // sorted by name
			if !strings.Contains(fn.Name, strings.ToLower(v.Query)) || fn.Name <= after {
				continue
			}
			if len(page) == uiPageSize {
				more = true
				break
			}
			page = append(page, fn)
		}
	}
	if more {
		v.Next = console.Link("/ui/functions", "q", v.Query, "after", page[len(page)-1].Name)
	}
	if after != "" {
		v.Prev = console.Link("/ui/functions", "q", v.Query)
	}
	names := make([]string, len(page))
	for i, fn := range page {
		names[i] = fn.Name
	}
	stats := g.recentStats(p.Namespace, names)
	for _, fn := range page {
		row := uiFunctionRow{Name: fn.Name, Runtime: fn.Runtime, MemoryMB: fn.MemoryMB, Revision: fn.Revision}
		if st, ok := stats[fn.Name]; ok {
			row.LastInvoked, row.Invocations, row.Errors = st.LastInvoked, st.Invocations, st.Errors
			row.Spark = g.hourlyInvocations(p.Namespace, fn.Name)
		}
		v.Rows = append(v.Rows, row)
	}
	p.Title, p.Data = "Functions", v
	return p
}

// uiDeploy deploys an upload: a zip, or a folder's files (which it
// zips), as function ?name= (a new one, or a new revision of an existing
// one, keeping its configuration). A nimbus.yaml at the package's root
// gives a new function its configuration, as the CLI's deploy does.
func (g *Gateway) uiDeploy(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	v := uiFunctionsView{DeployOpen: true, DeployName: name}
	fail := func(err error) { g.uiFail(w, g.functionsPage(r, p, v), "functions", err) }
	if r.MultipartForm == nil {
		fail(badRequest("a deploy is a form upload (multipart/form-data) with a zip or a folder"))
		return
	}
	code, err := uploadedPackage(r)
	if err != nil {
		fail(err)
		return
	}
	cfg := model.FunctionConfig{Name: name}
	if fn, err := g.svc.Function(p.Namespace, name); err == nil {
		cfg = fn.FunctionConfig
	} else if m, ok, err := manifestIn(code); err != nil {
		fail(err)
		return
	} else if ok {
		cfg = m
		cfg.Name = name
	}
	if h := strings.TrimSpace(r.PostFormValue("handler")); h != "" {
		cfg.Handler = h
	}
	out, err := g.svc.Deploy(r.Context(), p.Namespace, cfg, code, nil)
	if err != nil {
		fail(err)
		return
	}
	g.log.Info("console deploy", "function", name, "revision", out.Function.Revision, "by", callerKey(r.Context()).ID)
	http.Redirect(w, r, "/ui/functions/"+name+"?deployed="+strconv.FormatInt(out.Function.Revision, 10), http.StatusSeeOther)
}

// uploadedPackage is the zip a deploy form carries: its "zip" file, or
// its "files" (a folder, each named by its path under the folder, which
// the browser sends in the part's filename) zipped here.
func uploadedPackage(r *http.Request) ([]byte, error) {
	limit := codepkg.DefaultLimits().MaxZip
	if fhs := r.MultipartForm.File["zip"]; len(fhs) > 0 && fhs[0].Size > 0 {
		if fhs[0].Size > limit {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("the zip is %s: the limit is %d MB", sizeLimit(fhs[0].Size), limit>>20)}
		}
		f, err := fhs[0].Open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err == nil && (len(b) < 4 || !bytes.HasPrefix(b, []byte("PK"))) {
			return nil, badRequest(fmt.Sprintf("%q is not a zip file: upload a .zip of the function's folder, or the folder itself", fhs[0].Filename))
		}
		return b, err
	}
	fhs := r.MultipartForm.File["files"]
	if len(fhs) == 0 {
		return nil, badRequest("choose a .zip or a folder to deploy")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, fh := range fhs {
		name := fh.Filename
		if _, params, err := mime.ParseMediaType(fh.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
			name = params["filename"] // the folder-relative path (Filename is its base name only)
		}
		name = path.Clean(strings.ReplaceAll(name, `\`, "/"))
		if _, rest, ok := strings.Cut(name, "/"); ok {
			name = rest // the chosen folder's own name is not part of the package
		}
		if name == "." || strings.HasPrefix(name, "../") || strings.HasPrefix(name, "/") {
			return nil, badRequest(fmt.Sprintf("file %q has a path outside the folder", fh.Filename))
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		zf, err := zw.Create(name)
		if err == nil {
			_, err = io.Copy(zf, f)
		}
		f.Close()
		if err != nil {
			return nil, err
		}
		if int64(buf.Len()) > limit {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("the folder zips to over the %d MB limit", limit>>20)}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// manifestIn reads the nimbus.yaml at a package's root, if it has one.
func manifestIn(code []byte) (model.FunctionConfig, bool, error) {
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return model.FunctionConfig{}, false, nil // Deploy explains a bad zip
	}
	for _, f := range zr.File {
		if f.Name != "nimbus.yaml" && f.Name != "nimbus.yml" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return model.FunctionConfig{}, false, badRequest("nimbus.yaml cannot be read: " + err.Error())
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxConfigBytes))
		rc.Close()
		if err != nil {
			return model.FunctionConfig{}, false, badRequest("nimbus.yaml cannot be read: " + err.Error())
		}
		cfg, err := codepkg.ParseManifest(b)
		if err != nil {
			return model.FunctionConfig{}, false, err
		}
		return wire.ModelFunctionConfig(cfg), true, nil
	}
	return model.FunctionConfig{}, false, nil
}

// uiFile is one file of a function's package, as the code tab lists it.
type uiFile struct {
	Name string
	Size uint64
}

// uiConfigForm is the configuration form's fields, as typed.
type uiConfigForm struct {
	Memory, Timeout, Reserved, Description, Env string
}

// uiFunctionView is the function page's view; Tab says which part.
type uiFunctionView struct {
	Page     *console.Page
	CanWrite bool
	Fn       model.Function
	Tab      string
	Timeout  string
	URL      string
	Form     uiConfigForm
	// Code tab.
	Files   []uiFile
	File    string
	Lang    string
	Content string
	Binary  bool
	Problem *uiProblem
	// Test tab.
	Events    []model.TestEvent
	EventName string
	EventBody string
	Result    *uiResult
	// Invocations tab.
	Filter   uiFilter
	Statuses []string
	Windows  []string
	Records  []model.Invocation
	Next     string
	// Logs tab.
	Logs []model.LogEntry
	// Monitor tab.
	Charts []console.Chart
	// Configuration tab: the newest dependency builds.
	Builds []model.Build
}

// uiBuilds is how many of a function's builds its page lists.
const uiBuilds = 5

// uiProblem is why a deploy from the editor was refused, where the
// editor can show it.
type uiProblem struct {
	File    string
	Line    int
	Message string
}

// uiFunctionTab renders one tab of a function's page.
func (g *Gateway) uiFunctionTab(tab string) uiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *console.Page) {
		if _, err := g.functionView(r, p, tab); err != nil {
			p.Title = "No such function"
			g.uiFail(w, p, "error", err)
			return
		}
		if rev := r.URL.Query().Get("deployed"); rev != "" && tab == "config" {
			p.Notice = "Deployed revision " + rev + "."
		}
		g.ui.Render(w, http.StatusOK, "function", p, "")
	}
}

// functionView fills p with function {name}'s page at tab.
func (g *Gateway) functionView(r *http.Request, p *console.Page, tab string) (*uiFunctionView, error) {
	fn, err := g.svc.Function(p.Namespace, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	v := &uiFunctionView{Page: p, CanWrite: p.CanWrite, Fn: fn, Tab: tab, Timeout: time.Duration(fn.Timeout).String(), Form: configForm(fn)}
	if u, err := g.svc.FunctionURL(p.Namespace, fn.Name); err == nil {
		v.URL = "/fn/" + u.Namespace + "/" + u.Function
	}
	p.Title, p.Data = fn.Name, v
	switch tab {
	case "config":
		v.Builds = g.svc.Builds(p.Namespace, fn.Name)
		v.Builds = v.Builds[:min(len(v.Builds), uiBuilds)]
	case "code":
		err = g.fillCode(r, v)
	case "test":
		g.fillTest(r, v)
	case "invocations":
		g.fillInvocations(r, v, p.Namespace, fn.Name)
	case "logs":
		v.Logs = g.recentLogs(r, p.Namespace, fn.Name)
	case "monitor":
		v.Charts = g.functionCharts(r, p.Namespace, fn.Name)
	}
	return v, err
}

func configForm(fn model.Function) uiConfigForm {
	f := uiConfigForm{Memory: strconv.Itoa(fn.MemoryMB), Timeout: time.Duration(fn.Timeout).String(), Description: fn.Description}
	if fn.ReservedConcurrency != nil {
		f.Reserved = strconv.Itoa(*fn.ReservedConcurrency)
	}
	keys := make([]string, 0, len(fn.Env))
	for k := range fn.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + fn.Env[k] + "\n")
	}
	f.Env = b.String()
	return f
}

// uiFunctionChange saves the configuration form as a new revision (the
// same code), or deletes the function (action=delete).
func (g *Gateway) uiFunctionChange(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := r.PathValue("name")
	if r.PostFormValue("action") == "delete" {
		err := badRequest("tick the box to confirm that " + name + " should be deleted")
		if r.PostFormValue("confirm") == "yes" {
			_, err = g.svc.RemoveFunction(r.Context(), p.Namespace, name, false)
		}
		if err != nil {
			page := "function"
			if _, verr := g.functionView(r, p, "config"); verr != nil {
				page = "error"
			}
			g.uiFail(w, p, page, err)
			return
		}
		p.Notice = "Deleted " + name + "."
		w.Header().Set("HX-Push-Url", "/ui/functions")
		g.ui.Render(w, http.StatusOK, "functions", g.functionsPage(r, p, uiFunctionsView{}), "")
		return
	}
	v, err := g.functionView(r, p, "config")
	if err != nil {
		g.uiFail(w, p, "error", err)
		return
	}
	form := uiConfigForm{Memory: r.PostFormValue("memory"), Timeout: r.PostFormValue("timeout"), Reserved: r.PostFormValue("reserved"),
		Description: r.PostFormValue("description"), Env: r.PostFormValue("env")}
	v.Form = form
	rev, err := g.redeploy(r, p.Namespace, v.Fn, form, "", nil)
	if err != nil {
		g.uiFail(w, p, "function", err)
		return
	}
	g.functionView(r, p, "config")
	g.uiDone(w, p, "function", "/ui/functions/"+name, fmt.Sprintf("Saved as revision %d.", rev))
}

// applyConfigForm is cfg with the form's fields; a field that does not
// parse is a 400 naming it (the service validates the ranges).
func applyConfigForm(cfg model.FunctionConfig, f uiConfigForm) (model.FunctionConfig, error) {
	mem, err := strconv.Atoi(strings.TrimSpace(f.Memory))
	if err != nil {
		return cfg, badRequest(fmt.Sprintf("memory %q is not a whole number of MB", f.Memory))
	}
	to, err := time.ParseDuration(strings.TrimSpace(f.Timeout))
	if err != nil {
		return cfg, badRequest(fmt.Sprintf("timeout %q is not a duration such as 30s or 5m", f.Timeout))
	}
	cfg.MemoryMB, cfg.Timeout, cfg.Description = mem, model.Duration(to), strings.TrimSpace(f.Description)
	cfg.ReservedConcurrency = nil
	if s := strings.TrimSpace(f.Reserved); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return cfg, badRequest(fmt.Sprintf("reserved concurrency %q is not a whole number (leave it empty for none)", f.Reserved))
		}
		cfg.ReservedConcurrency = &n
	}
	env := map[string]string{}
	for i, line := range strings.Split(strings.ReplaceAll(f.Env, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return cfg, badRequest(fmt.Sprintf("environment line %d (%q) is not NAME=value", i+1, line))
		}
		env[strings.TrimSpace(k)] = val
	}
	cfg.Env = env
	if len(env) == 0 {
		cfg.Env = nil
	}
	return cfg, nil
}

// fillCode lists the package's files and reads ?file= (default: the
// handler's module).
func (g *Gateway) fillCode(r *http.Request, v *uiFunctionView) error {
	code, err := g.code(r.Context(), v.Fn.CodeSHA256)
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return err
	}
	want := r.URL.Query().Get("file")
	if want == "" {
		want = r.PostFormValue("file")
	}
	if want == "" {
		mod, _, _ := strings.Cut(v.Fn.Handler, ".")
		want = strings.ReplaceAll(mod, ".", "/") + ".py"
	}
	var chosen *zip.File
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		v.Files = append(v.Files, uiFile{Name: f.Name, Size: f.UncompressedSize64})
		if f.Name == want {
			chosen = f
		}
	}
	if chosen == nil && len(zr.File) > 0 {
		for _, f := range zr.File {
			if !f.FileInfo().IsDir() {
				chosen = f
				break
			}
		}
	}
	if chosen == nil {
		return nil
	}
	v.File = chosen.Name
	v.Lang = "python"
	if strings.HasSuffix(chosen.Name, ".json") {
		v.Lang = "json"
	}
	if chosen.UncompressedSize64 > 1<<20 {
		v.Binary = true
		return nil
	}
	rc, err := chosen.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if bytes.IndexByte(b, 0) >= 0 {
		v.Binary = true
		return nil
	}
	v.Content = string(b)
	return nil
}

// uiSaveCode deploys the package with one file replaced by the editor's
// text, as a new revision. A package that does not compile is refused by
// the deploy's check; the page then shows the file, line and message
// next to the editor, with the edit kept. An edit of an older revision
// than the one serving is refused too (someone deployed meanwhile).
func (g *Gateway) uiSaveCode(w http.ResponseWriter, r *http.Request, p *console.Page) {
	v, err := g.functionView(r, p, "code")
	if err != nil {
		g.uiFail(w, p, "error", err)
		return
	}
	file, content := r.PostFormValue("file"), strings.ReplaceAll(r.PostFormValue("content"), "\r\n", "\n")
	keep := func(err error) {
		v.File, v.Content, v.Binary = file, content, false
		var pe *pycheck.Error
		if errors.As(err, &pe) && len(pe.Problems) > 0 {
			pr := pe.Problems[0]
			v.Problem = &uiProblem{File: pr.File, Line: pr.Line, Message: pr.Message}
		}
		g.uiFail(w, p, "function", err)
	}
	if base := r.PostFormValue("base"); base != strconv.FormatInt(v.Fn.Revision, 10) {
		keep(&apiError{http.StatusConflict, "Conflict", fmt.Sprintf("%s changed since you opened it (revision %s, now %d): copy your edit, reload, and apply it again", v.Fn.Name, base, v.Fn.Revision)})
		return
	}
	rev, err := g.redeploy(r, p.Namespace, v.Fn, configForm(v.Fn), file, []byte(content))
	if err != nil {
		keep(err)
		return
	}
	g.functionView(r, p, "code")
	g.uiDone(w, p, "function", console.Link("/ui/functions/"+v.Fn.Name+"/code", "file", file), fmt.Sprintf("Deployed %s as revision %d.", file, rev))
}

// redeploy deploys fn again as a new revision: with the configuration
// form's fields, and with file's contents replaced when file is set.
func (g *Gateway) redeploy(r *http.Request, ns string, fn model.Function, form uiConfigForm, file string, content []byte) (int64, error) {
	cfg, err := applyConfigForm(fn.FunctionConfig, form)
	if err != nil {
		return 0, err
	}
	code, err := g.code(r.Context(), fn.CodeSHA256)
	if err != nil {
		return 0, err
	}
	if file != "" {
		if code, err = replaceInZip(code, file, content); err != nil {
			return 0, err
		}
	}
	out, err := g.svc.Deploy(r.Context(), ns, cfg, code, nil)
	return out.Function.Revision, err
}

// code is the code package digest names: this server's copy, or one
// fetched from another server (and kept here).
func (g *Gateway) code(ctx context.Context, digest string) ([]byte, error) {
	b, err := g.cfg.Blobs.Get(ctx, digest)
	if err == nil || g.cfg.FetchBlob == nil {
		return b, err
	}
	if b, err = g.cfg.FetchBlob(ctx, digest); err != nil {
		return nil, err
	}
	if _, perr := g.cfg.Blobs.Put(b); perr != nil {
		g.log.Warn("keeping a fetched code package", "sha256", digest, "err", perr)
	}
	return b, nil
}

// replaceInZip returns the zip with file's contents replaced (or added).
func replaceInZip(code []byte, file string, content []byte) ([]byte, error) {
	if file == "" || strings.HasPrefix(file, "/") || strings.Contains(file, "..") {
		return nil, badRequest(fmt.Sprintf("file %q is not a path inside the package", file))
	}
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	replaced := false
	for _, f := range zr.File {
		if f.Name == file {
			hdr := f.FileHeader
			hdr.Method = zip.Deflate
			zf, err := zw.CreateHeader(&hdr)
			if err != nil {
				return nil, err
			}
			zf.Write(content)
			replaced = true
			continue
		}
		if err := zw.Copy(f); err != nil {
			return nil, err
		}
	}
	if !replaced {
		zf, err := zw.Create(file)
		if err != nil {
			return nil, err
		}
		zf.Write(content)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// uiFilter is the invocations tab's filter, as typed.
type uiFilter struct {
	Status, Trigger, Since, ID string
}

var uiWindows = map[string]time.Duration{"15m": 15 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

// fillInvocations lists the records that match the filter, newest first,
// a page at a time (?before= the last one's start).
func (g *Gateway) fillInvocations(r *http.Request, v *uiFunctionView, ns, function string) {
	q := r.URL.Query()
	v.Statuses = []string{model.StatusSuccess, model.StatusFailed, model.StatusQueued, model.StatusRunning, model.StatusDeadLetter}
	v.Windows = []string{"15m", "1h", "24h", "7d"}
	v.Filter = uiFilter{Status: q.Get("status"), Trigger: strings.TrimSpace(q.Get("trigger")), Since: q.Get("since"), ID: strings.TrimSpace(q.Get("id"))}
	window, ok := uiWindows[v.Filter.Since]
	if !ok {
		v.Filter.Since, window = "24h", 24*time.Hour
	}
	if v.Filter.ID != "" {
		if rec, err := g.record(v.Filter.ID); err == nil && rec.Namespace == ns && (function == "" || rec.Function == function) {
			v.Records = []model.Invocation{rec}
		}
		return
	}
	rq := state.RecordQuery{Namespace: ns, Function: function, Status: v.Filter.Status, Trigger: v.Filter.Trigger,
		Since: time.Now().Add(-window), Limit: uiPageSize + 1}
	if b, err := time.Parse(time.RFC3339Nano, q.Get("before")); err == nil {
		rq.Before, rq.BeforeID = b, q.Get("before_id")
	}
	recs := g.records(rq)
	if len(recs) > uiPageSize {
		recs = recs[:uiPageSize]
		base := r.URL.Path
		v.Next = console.Link(base, "status", v.Filter.Status, "trigger", v.Filter.Trigger, "since", v.Filter.Since,
			"before", recs[len(recs)-1].Start.Format(time.RFC3339Nano), "before_id", recs[len(recs)-1].ID)
	}
	v.Records = recs
}

// recentLogs is the function's last 20 logs, oldest first, for the logs
// tab to show before the live tail adds to them.
func (g *Gateway) recentLogs(r *http.Request, ns, function string) []model.LogEntry {
	recs := g.records(state.RecordQuery{Namespace: ns, Function: function, Limit: 20})
	var out []model.LogEntry
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].LogTail != "" {
			out = append(out, service.LogOfRecord(recs[i]))
		}
	}
	return out
}
