package benchmark

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"nimbus/pkg/client"
)

// URLResult is the function URL phase's figures (issue 18), in a Result
// only when Options.URLs asks for the phase: throughput (200 answers per
// second) of the no-op function through its URL and through the invoke
// route, measured in alternating rounds of the same load, and their
// ratio (issue 18's goal: >= 0.9).
type URLResult struct {
	URLThroughputRPS    float64 `json:"url_throughput_rps"`
	DirectThroughputRPS float64 `json:"url_direct_throughput_rps"`
	URLRatio            float64 `json:"url_ratio"`
}

// URLGoal is issue 18's target for URLResult.URLRatio.
const URLGoal = 0.9

// urlRounds is how many rounds of each kind the URL phase runs, and how
// long each lasts.
func (sz sizes) urlRounds() (int, time.Duration) {
	if sz.throughput < 10*time.Second {
		return 3, time.Second
	}
	return 5, 2 * time.Second
}

// runURLs gives the no-op function name (of namespace ns) a URL with
// auth key, so that both paths make the same key checks, then alternates
// rounds of sz.clients connections invoking it directly and through the
// URL (a POST of {} to /fn/{ns}/{name}/), so that both share the
// machine's noise, and sets rep.URLResult from the totals.
func runURLs(ctx context.Context, a *api, rep *Report, sz sizes, ns, name string) error {
	body, _ := json.Marshal(client.FunctionURL{Auth: client.URLAuthKey})
	status, _, resp, err := a.do(ctx, http.MethodPut, "/v1/functions/"+url.PathEscape(name)+"/url", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("benchmark: creating the URL of %s: %d %s", name, status, resp)
	}
	direct, err := newLoadTarget(a.base, a.token, "/v1/functions/"+url.PathEscape(name)+"/invoke", []byte("{}"))
	if err != nil {
		return err
	}
	viaURL, err := newLoadTarget(a.base, a.token, "/fn/"+url.PathEscape(client.NamespaceOf(ns))+"/"+url.PathEscape(name)+"/", []byte("{}"))
	if err != nil {
		return err
	}
	rounds, each := sz.urlRounds()
	var served [2]int64
	var took [2]time.Duration
	for range rounds {
		for i, t := range []*loadTarget{direct, viaURL} {
			rctx, cancel := context.WithTimeout(ctx, each)
			t0 := time.Now()
			n := load(rctx, t, sz.clients)
			took[i] += time.Since(t0)
			cancel()
			if n.Failed > 0 {
				return fmt.Errorf("benchmark: %d of the requests to %s failed", n.Failed, []string{"the invoke route", "the function URL"}[i])
			}
			served[i] += n.Served
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &URLResult{
		DirectThroughputRPS: round(float64(served[0]) / took[0].Seconds()),
		URLThroughputRPS:    round(float64(served[1]) / took[1].Seconds()),
	}
	r.URLRatio = ratio(r.URLThroughputRPS, r.DirectThroughputRPS)
	rep.URLResult = r
	return nil
}
