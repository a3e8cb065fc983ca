package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"nimbus/internal/console"
	"nimbus/internal/model"
	"nimbus/internal/worker"
)

// The console's charts and figures (from the per-minute metric history
// that the records' Raft entries build on every server), the test tab
// and the live log tail.

// uiChartWindows are the windows a chart offers, with their steps.
// The overview offers 1h and 24h (its list of failing functions reads
// the minutes); a function's monitor tab also a week by 2 hours and 90
// days by the day, which the metric history's hours and days hold.
var uiChartWindows = map[string]time.Duration{"1h": time.Minute, "24h": 15 * time.Minute, "7d": 2 * time.Hour, "90d": 24 * time.Hour}

type uiClusterHealth struct {
	Servers, HealthyServers int
	Leader                  string
	Workers, ReadyWorkers   int
	Slots, InUse            int
}

type uiOverviewView struct {
	Window                                     string
	Invocations, Errors, Throttles, ColdStarts int64
	Functions                                  int
	Charts                                     []console.Chart
	Worst                                      []model.FunctionStats
	Cluster                                    *uiClusterHealth
}

func (g *Gateway) uiOverview(w http.ResponseWriter, r *http.Request, p *console.Page) {
	window := r.URL.Query().Get("window")
	step, ok := uiChartWindows[window]
	if !ok || step > 15*time.Minute {
		window, step = "1h", time.Minute
	}
	span := uiWindows[window]
	v := uiOverviewView{Window: window, Functions: len(g.svc.Functions(p.Namespace))}
	points := g.series(p.Namespace, "", span, step)
	for _, pt := range points {
		v.Invocations += pt.Invocations
		v.Errors += pt.Errors
		v.Throttles += pt.Throttles
		v.ColdStarts += pt.ColdStarts
	}
	v.Charts = charts(points)
	now := time.Now()
	for _, st := range g.svc.FunctionStats(p.Namespace, now.Add(-span), now) {
		if st.Errors > 0 {
			v.Worst = append(v.Worst, st)
		}
	}
	sort.SliceStable(v.Worst, func(i, j int) bool {
		return float64(v.Worst[i].Errors)/float64(v.Worst[i].Invocations) > float64(v.Worst[j].Errors)/float64(v.Worst[j].Invocations)
	})
	if len(v.Worst) > 10 {
		v.Worst = v.Worst[:10]
	}
	if p.IsAdmin {
		h := &uiClusterHealth{}
		for _, s := range g.clusterServers() {
			h.Servers++
			if s.Healthy {
				h.HealthyServers++
			}
			if s.Role == "leader" {
				h.Leader = s.ID
			}
		}
		for _, wk := range g.cfg.Placer.Workers() {
			h.Workers++
			if wk.State == "ready" {
				h.ReadyWorkers++
			}
			h.Slots += wk.Slots
			h.InUse += wk.InUse
		}
		v.Cluster = h
	}
	p.Title, p.Data = "Overview", v
	g.ui.Render(w, http.StatusOK, "overview", p, "")
}

// series is the metric history of one function (or the namespace's,
// for function "") over the last span, a point per step.
func (g *Gateway) series(ns, function string, span, step time.Duration) []model.MetricPoint {
	to := time.Now().Truncate(step).Add(step)
	pts, err := g.svc.MetricSeries(ns, function, to.Add(-span), to, step)
	if err != nil {
		g.log.Warn("console: metric series", "err", err)
	}
	return pts
}

// charts draws points as the three charts of a page: invocations,
// errors and throttles; duration percentiles; cold starts.
func charts(points []model.MetricPoint) []console.Chart {
	x := make([]int64, len(points))
	col := func(f func(model.MetricPoint) float64, keepZero bool) []*float64 {
		out := make([]*float64, len(points))
		for i, pt := range points {
			if v := f(pt); keepZero || pt.Invocations > 0 {
				out[i] = &v
			}
		}
		return out
	}
	var any bool
	for i, pt := range points {
		x[i] = pt.Time.Unix()
		any = any || pt.Invocations > 0 || pt.Throttles > 0
	}
	return []console.Chart{
		{Title: "Invocations, errors and throttles", X: x, Empty: !any, Series: []console.Series{
			{Label: "invocations", Values: col(func(p model.MetricPoint) float64 { return float64(p.Invocations) }, true)},
			{Label: "errors", Values: col(func(p model.MetricPoint) float64 { return float64(p.Errors) }, true)},
			{Label: "throttles", Values: col(func(p model.MetricPoint) float64 { return float64(p.Throttles) }, true)},
		}},
		{Title: "Duration (p50 and p99)", X: x, Unit: "ms", Empty: !any, Series: []console.Series{
			{Label: "p50", Values: col(func(p model.MetricPoint) float64 { return p.P50MS }, false)},
			{Label: "p99", Values: col(func(p model.MetricPoint) float64 { return p.P99MS }, false)},
		}},
		{Title: "Usage (GB-seconds and CPU seconds)", X: x, Unit: "s", Empty: !any, Series: []console.Series{
			{Label: "GB-s", Values: col(func(p model.MetricPoint) float64 { return p.GBSeconds }, true)},
			{Label: "CPU s", Values: col(func(p model.MetricPoint) float64 { return p.CPUSeconds }, true)},
		}},
		{Title: "Cold starts", X: x, Empty: !any, Series: []console.Series{
			{Label: "cold starts", Values: col(func(p model.MetricPoint) float64 { return float64(p.ColdStarts) }, true)},
		}},
	}
}

// functionCharts is the monitor tab's charts over ?window= (1h, 24h, 7d
// or 90d).
func (g *Gateway) functionCharts(r *http.Request, ns, function string) []console.Chart {
	window := r.URL.Query().Get("window")
	step, ok := uiChartWindows[window]
	if !ok {
		window, step = "24h", 15*time.Minute
	}
	span := uiWindows[window]
	if window == "90d" {
		span = 90 * 24 * time.Hour
	}
	return charts(g.series(ns, function, span, step))
}

// recentStats is the figures of the named functions over the last day,
// by name.
func (g *Gateway) recentStats(ns string, names []string) map[string]model.FunctionStats {
	now := time.Now()
	out := map[string]model.FunctionStats{}
	if len(names) == 0 {
		return out
	}
	for _, st := range g.svc.FunctionStats(ns, now.Add(-24*time.Hour), now, names...) {
		out[st.Function] = st
	}
	return out
}

// hourlyInvocations is a function's invocations per hour over the last
// day (its sparkline).
func (g *Gateway) hourlyInvocations(ns, function string) []float64 {
	pts := g.series(ns, function, 24*time.Hour, time.Hour)
	out := make([]float64, len(pts))
	for i, pt := range pts {
		out[i] = float64(pt.Invocations)
	}
	return out
}

// uiResult is a test invocation's outcome as the test tab shows it.
type uiResult struct {
	Async                 bool
	RequestID             string
	ErrorType             string
	Payload               []byte
	Log                   string
	DurationMS            float64
	BilledMS              int64
	MemoryMB, MaxMemoryMB int
	Cold                  bool
	InitMS                float64
}

// fillTest lists the function's saved test events and opens ?event=
// (default: the first), or a starter event.
func (g *Gateway) fillTest(r *http.Request, v *uiFunctionView) {
	v.Events = g.svc.TestEvents(v.Fn.Namespace, v.Fn.Name)
	want := r.URL.Query().Get("event")
	v.EventBody = "{\n  \"key\": \"value\"\n}\n"
	for i, e := range v.Events {
		if e.Name == want || want == "" && i == 0 {
			v.EventName, v.EventBody = e.Name, console.Pretty(e.Event)
		}
	}
}

// uiTestEvent invokes the edited event (action=invoke, sync; async),
// saves it under its name (save) or deletes the saved one (delete).
func (g *Gateway) uiTestEvent(w http.ResponseWriter, r *http.Request, p *console.Page) {
	v, err := g.functionView(r, p, "test")
	if err != nil {
		g.uiFail(w, p, "error", err)
		return
	}
	name, body := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("event")
	v.EventName, v.EventBody = name, body // kept whatever happens
	ns, fn := p.Namespace, v.Fn
	notice := ""
	switch action := r.PostFormValue("action"); action {
	case "save":
		_, err = g.svc.PutTestEvent(r.Context(), ns, fn.Name, name, []byte(body), callerKey(r.Context()).ID)
		notice = "Saved test event " + name + "."
	case "delete":
		err = g.svc.DeleteTestEvent(r.Context(), ns, fn.Name, name)
		notice = "Deleted test event " + name + "."
		v.EventName = ""
	case "invoke", "async":
		if !json.Valid([]byte(body)) {
			err = badRequest("the event is not valid JSON: fix it and invoke again")
			break
		}
		id := newRequestID()
		if action == "async" {
			item := model.QueueItem{RequestID: id, Namespace: fn.Namespace, Function: fn.Name, Event: json.RawMessage(body), Trigger: "async", EnqueuedAt: time.Now().UTC()}
			if err = g.cfg.Enqueuer.Enqueue(r.Context(), item); err == nil {
				v.Result = &uiResult{Async: true, RequestID: id}
			}
			break
		}
		var run syncRun
		if run, err = g.invokeSync(r, id, fn, "sync", []byte(body)); err == nil {
			v.Result = resultOf(id, fn, run)
		}
	default:
		err = badRequest(fmt.Sprintf("unknown action %q", action))
	}
	if err != nil {
		g.uiFail(w, p, "function", err)
		return
	}
	v.Events = g.svc.TestEvents(ns, fn.Name)
	p.Notice = notice
	w.Header().Set("HX-Push-Url", console.Link("/ui/functions/"+fn.Name+"/test", "event", v.EventName))
	g.ui.Render(w, http.StatusOK, "function", p, "")
}

// resultOf is what the test tab shows of a synchronous run: the answer,
// the whole log, and the REPORT line's figures.
func resultOf(id string, fn model.Function, run syncRun) *uiResult {
	rec := worker.NewRecord(worker.Request{RequestID: id, Function: fn}, "sync", run.Result)
	return &uiResult{RequestID: id, ErrorType: run.ErrorType, Payload: run.Payload, Log: string(run.Log),
		DurationMS: rec.DurationMS, BilledMS: rec.BilledMS, MemoryMB: rec.MemoryMB, MaxMemoryMB: rec.MaxMemoryMB,
		Cold: rec.ColdStart, InitMS: rec.InitMS}
}

// uiTail streams the function's new logs as server-sent events, as the
// API's follow=1 does, for the logs tab's live tail.
func (g *Gateway) uiTail(w http.ResponseWriter, r *http.Request, p *console.Page) {
	name := r.PathValue("name")
	if _, err := g.svc.Function(p.Namespace, name); err != nil {
		writeError(w, g.log, err)
		return
	}
	ns := p.Namespace
	g.streamLogs(w, r, nil, func(e model.LogEntry) bool {
		return model.NamespaceOf(e.Namespace) == ns && e.Function == name
	})
}
