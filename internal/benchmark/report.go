package benchmark

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes rep for a person: every figure of the Result with its
// goal, where issue 7 sets one, and whether it is met.
func WriteTable(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "nimbus bench: %s", rep.Target)
	if rep.Executor != "" {
		fmt.Fprintf(w, "; executor %s", rep.Executor)
	}
	fmt.Fprintf(w, "\nruntime %s (%s); cold n=%d, warm n=%d sequential; throughput %d clients for %s\n\n",
		rep.Runtime, rep.Interpreter, rep.Cold, rep.Warm, rep.Clients, rep.Throughput)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tVALUE\tGOAL")
	row := func(name, value, goal string, met *bool) {
		if met != nil {
			if *met {
				goal += "  met"
			} else {
				goal += "  NOT met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, value, goal)
	}
	ms := func(x float64) string { return fmt.Sprintf("%.3f ms", x) }
	is := func(b bool) *bool { return &b }
	r := rep.Result
	row("python_startup_p50_ms", ms(r.PythonStartupP50MS), "", nil)
	row("http_rtt_p50_ms", ms(r.HTTPRTTP50MS), "", nil)
	row("pipe_rtt_p50_ms", ms(r.PipeRTTP50MS), "", nil)
	row("cold_p50_ms", ms(r.ColdP50MS), "", nil)
	row("cold_p99_ms", ms(r.ColdP99MS), "", nil)
	row("warm_p50_ms", ms(r.WarmP50MS), "", nil)
	base := r.HTTPRTTP50MS + r.PipeRTTP50MS
	row("warm_p99_ms", ms(r.WarmP99MS), fmt.Sprintf("< 5 x (http + pipe) = %.3f ms", 5*base), is(r.WarmP99MS < 5*base))
	row("throughput_rps", fmt.Sprintf("%.0f /s", r.ThroughputRPS), fmt.Sprintf(">= %.0f", Goals.ThroughputRPS), is(r.ThroughputRPS >= Goals.ThroughputRPS))
	pss := fmt.Sprintf("%d kB", r.IdleInstancePSSKB)
	if rep.PSSPid == 0 {
		pss = "not found"
	}
	row("idle_instance_pss_kb", pss, fmt.Sprintf("<= %d", Goals.PSSKB), is(rep.PSSPid != 0 && r.IdleInstancePSSKB <= Goals.PSSKB))
	row("cold_ratio", fmt.Sprintf("%.3f", r.ColdRatio), fmt.Sprintf("<= %.2g", Goals.ColdRatio), is(r.ColdRatio <= Goals.ColdRatio))
	row("warm_ratio", fmt.Sprintf("%.3f", r.WarmRatio), fmt.Sprintf("<= %.2g", Goals.WarmRatio), is(r.WarmRatio <= Goals.WarmRatio))
	if u := r.URLResult; u != nil {
		row("url_throughput_rps", fmt.Sprintf("%.0f /s", u.URLThroughputRPS), "", nil)
		row("url_direct_throughput_rps", fmt.Sprintf("%.0f /s", u.DirectThroughputRPS), "", nil)
		row("url_ratio", fmt.Sprintf("%.3f", u.URLRatio), fmt.Sprintf(">= %.2g", URLGoal), is(u.URLRatio >= URLGoal))
	}
	if d := r.DepsResult; d != nil {
		row("python_heavy_import_p50_ms", ms(d.PythonHeavyImportP50MS), "", nil)
		row("cold_heavy_p50_ms", ms(d.ColdHeavyP50MS), "", nil)
		row("cold_heavy_ratio", fmt.Sprintf("%.3f", d.ColdHeavyRatio), fmt.Sprintf("<= %.2g", HeavyGoal), is(d.ColdHeavyRatio <= HeavyGoal))
		row("cold_burst_p50_ms", ms(d.ColdBurstP50MS), "", nil)
		row("cold_burst_p99_ms", ms(d.ColdBurstP99MS), "", nil)
		row("cold_burst_ratio", fmt.Sprintf("%.3f", d.ColdBurstRatio), fmt.Sprintf("<= %.2g", BurstGoal), is(d.ColdBurstRatio <= BurstGoal))
	}
	if st := r.StreamResult; st != nil {
		row("stream_ttfb_p50_ms", ms(st.StreamTTFBP50MS), "", nil)
		row("stream_whole_p50_ms", ms(st.StreamWholeP50MS), "", nil)
		row("stream_ttfb_ratio", fmt.Sprintf("%.3f", st.StreamTTFBRatio), "", nil)
	}
	if u := r.RunResult; u != nil {
		row("run_first_byte_p50_ms", ms(u.RunFirstByteP50MS), "", nil)
		row("run_first_byte_ratio", fmt.Sprintf("%.3f", u.RunFirstByteRatio), fmt.Sprintf("<= %d x cold_p50", RunFirstByteGoal), is(u.RunFirstByteRatio <= RunFirstByteGoal))
		row("run_echo_p50_ms", ms(u.RunEchoP50MS), "", nil)
		row("run_echo_ratio", fmt.Sprintf("%.3f", u.RunEchoRatio), fmt.Sprintf("<= %d x warm_p50", RunEchoGoal), is(u.RunEchoRatio <= RunEchoGoal))
		row("run_stream_mb_per_s", fmt.Sprintf("%.0f MB/s", u.RunStreamMBps), fmt.Sprintf(">= %d", RunStreamGoal), is(u.RunStreamMBps >= RunStreamGoal))
	}
	if l := r.LambdaResult; l != nil {
		row("lambda_throughput_rps", fmt.Sprintf("%.0f /s", l.LambdaThroughputRPS), "", nil)
		row("lambda_throughput_ratio", fmt.Sprintf("%.3f", l.LambdaThroughputRatio), fmt.Sprintf(">= %.2g x throughput_rps", LambdaThroughputGoal), is(l.LambdaThroughputRatio >= LambdaThroughputGoal))
	} else if rep.LambdaSkipped != "" {
		row("lambda_throughput_rps", "skipped", rep.LambdaSkipped, nil)
	}
	if c := r.CustomResult; c != nil {
		row("custom_warm_p50_ms", fmt.Sprintf("%s (%s)", ms(c.CustomWarmP50MS), rep.CustomBootstrap), "", nil)
		row("custom_warm_ratio", fmt.Sprintf("%.3f", c.CustomWarmRatio), fmt.Sprintf("<= %d x warm_p50", CustomWarmGoal), is(c.CustomWarmRatio <= CustomWarmGoal))
	} else if rep.CustomSkipped != "" {
		row("custom_warm_p50_ms", "skipped", rep.CustomSkipped, nil)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.HTTPInProcessP50MS > 0 {
		fmt.Fprintf(w, "\nhttp_rtt_p50_ms is a round trip to the trivial handler in a process of its own; served inside\n"+
			"this process (the baseline of runs before 2026-11-23) it took %.3f ms, and warm_ratio with it is %.3f\n",
			rep.HTTPInProcessP50MS, rep.WarmRatioInProcess)
	}
	fmt.Fprintf(w, "\nthroughput phase: %d served, %d refused (429), %d failed, after %s unmeasured; the load\n"+
		"comes from a lean keep-alive HTTP/1.1 client, as wrk's does (net/http's cost as much CPU per request as the node)\n",
		rep.Served, rep.Refused, rep.Failed, throughputRamp)
	if rep.LambdaResult != nil {
		fmt.Fprintf(w, "Lambda API phase (right after, same load, no ramp): %d served, %d refused (429), %d failed\n",
			rep.LambdaServed, rep.LambdaRefused, rep.LambdaFailed)
	}
	if rep.CustomResult != nil {
		fmt.Fprintf(w, "custom runtime phase: the no-op Python function in the same rounds took %.3f ms at p50\n", rep.CustomBesidePythonP50MS)
	}
	if rep.NotCold > 0 {
		fmt.Fprintf(w, "note: %d of the cold invokes were not marked as cold starts\n", rep.NotCold)
	}
	if rep.PSSPid != 0 {
		fmt.Fprintf(w, "PSS read from pid %d\n", rep.PSSPid)
	}
	return nil
}
