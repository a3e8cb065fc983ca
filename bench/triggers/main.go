// Command triggers measures event source mappings (issue 18): how many
// messages per second a RabbitMQ mapping and a Kafka mapping run
// through a no-op Python function in batches of 100, and the latency
// from a message's publication to the end of the invocation that ran it
// when messages arrive at a fixed rate below capacity.
//
// It builds nimbus (unless -bin names one), starts a cluster with
// bench/internal/cluster (three servers, one worker), starts RabbitMQ
// (a process of its Debian package) and Kafka (franz-go's in-process
// kfake) with internal/sources/brokertest on free loopback ports with
// their own data directories, and stops them all at the end. For each
// -concurrency and each broker it runs:
//
//   - throughput: -messages messages are published to a fresh queue or
//     topic and confirmed, then a mapping is created on them with
//     --start-from earliest; timed from the mapping's creation until the
//     last batch's invocation ended (from the invocation records), and,
//     coarser, until GET /v1/sources/NAME reports them all succeeded;
//   - paced: -rate messages/s for -pace-for to a fresh queue or topic
//     whose mapping already runs, each body {"i":K,"t":<publish time,
//     µs>}; the function prints the K of its batch, and a message's
//     latency is its batch's invocation end (record start + duration)
//     less its publish time.
//
// The goal (issue 18) is at least 5,000 messages/s. Nothing asserts it.
//
//	go run ./bench/triggers [-messages 20000] [-concurrency 1,2] [-rate 1000] [-pace-for 10s] [-o json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// goalPerS is issue 18's goal: messages/s through one mapping, on two
// cores with the broker on the same machine.
const goalPerS = 5000

type options struct {
	messages     int
	batch        int
	concurrency  []int
	partitions   int
	rate         int
	paceFor      time.Duration
	sandbox      bool
	bin          string
	keep         bool
	brokerFilter string
	workerArgs   []string
}

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine stats.Machine `json:"machine"`
	Command string        `json:"command"`
	Setup   string        `json:"setup"`
	// LoadBefore and LoadAfter are /proc/loadavg and the CPU pressure
	// (PSI "some" avg10, %) when the measurements began and ended: the
	// machine's other work shares the two cores.
	LoadBefore string         `json:"load_before"`
	LoadAfter  string         `json:"load_after"`
	Runs       []Run          `json:"runs"`
	GoalPerS   float64        `json:"goal_per_s"`
	LogNotes   []cluster.Note `json:"log_notes"`
}

// Run is one broker at one concurrency.
type Run struct {
	Broker      string      `json:"broker"`
	Concurrency int         `json:"concurrency"`
	Throughput  *Throughput `json:"throughput,omitempty"`
	Paced       *Paced      `json:"paced,omitempty"`
}

func main() {
	var (
		o      options
		format string
		conc   string
		extra  string
	)
	flag.IntVar(&o.messages, "messages", 20000, "messages pre-loaded for the throughput phase")
	flag.IntVar(&o.batch, "batch-size", 100, "the mappings' --batch-size")
	flag.StringVar(&conc, "concurrency", "1,2", "the mappings' --concurrency values to measure, comma-separated")
	flag.IntVar(&o.partitions, "partitions", 2, "partitions of each Kafka topic (a partition stays on one lane)")
	flag.IntVar(&o.rate, "rate", 1000, "messages/s of the paced phase")
	flag.DurationVar(&o.paceFor, "pace-for", 10*time.Second, "how long the paced phase publishes (0 skips it)")
	flag.StringVar(&o.brokerFilter, "brokers", "rabbitmq,kafka", "brokers to measure, comma-separated")
	flag.StringVar(&extra, "worker-args", "", "more flags for the worker, space-separated (e.g. --pressure-limit -1)")
	flag.BoolVar(&o.sandbox, "sandbox", true, "run the worker sandboxed (needs root)")
	flag.StringVar(&o.bin, "bin", "", "nimbus binary to start (default: go build nimbus/cmd/nimbus)")
	flag.StringVar(&format, "o", "table", "output: table or json")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster's data directory and the processes' logs")
	flag.Parse()
	o.workerArgs = strings.Fields(extra)
	var err error
	if o.concurrency, err = stats.Ints("concurrency", conc, 1, 100); err != nil {
		fmt.Fprintf(os.Stderr, "triggers: %v\n", err)
		os.Exit(2)
	}
	if o.messages < 1 || o.batch < 1 || o.batch > 10000 || o.partitions < 1 || o.rate < 1 ||
		(format != "table" && format != "json") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stats.Main("triggers", format, func(ctx context.Context) (*Result, error) { return run(ctx, o) }, printTable)
}

func run(ctx context.Context, o options) (res *Result, err error) {
	mode := "sandboxed"
	if !o.sandbox {
		mode = "--insecure-no-sandbox"
	}
	maxConc := 1
	for _, c := range o.concurrency {
		maxConc = max(maxConc, c)
	}
	res = &Result{
		Machine: stats.ThisMachine(),
		Command: strings.Join(append([]string{"go run ./bench/triggers"}, os.Args[1:]...), " "),
		Setup: fmt.Sprintf("3 servers, 1 worker --slots %d %s %s; RabbitMQ (transient messages, non-durable queue), Kafka kfake in the benchmark's process (%d partitions); batch size %d",
			maxConc, mode, strings.Join(o.workerArgs, " "), o.partitions, o.batch),
		GoalPerS: goalPerS,
	}
	r := &runner{}
	defer func() { err = errors.Join(err, r.Close()) }()
	var brokers []*broker
	for _, kind := range strings.Split(o.brokerFilter, ",") {
		var b *broker
		switch strings.TrimSpace(kind) {
		case "rabbitmq":
			fmt.Fprintln(os.Stderr, "starting RabbitMQ...")
			b, err = startRabbitMQ(r)
		case "kafka":
			var topics []string
			for _, c := range o.concurrency {
				topics = append(topics, dest("tp", c), dest("lat", c))
			}
			b, err = startKafka(r, o.partitions, topics)
		default:
			err = fmt.Errorf("-brokers: unknown broker %q", kind)
		}
		if err != nil {
			return nil, err
		}
		defer b.close()
		brokers = append(brokers, b)
	}
	fmt.Fprintln(os.Stderr, "starting three servers and a worker...")
	c, err := cluster.Start(ctx, cluster.Options{Name: "triggers", Bin: o.bin, Slots: maxConc, Sandbox: o.sandbox, Keep: o.keep,
		WorkerArgs: o.workerArgs,
		// The paced phase reads a record per batch back.
		ServerArgs: []string{"--records-per-function", "100000"}})
	if err != nil {
		return nil, err
	}
	defer c.End(&err, &res.LogNotes)
	api := cluster.NewAPI(c.Token, 8)
	leader, err := api.Settle(ctx, c, 90*time.Second)
	if err != nil {
		return nil, fmt.Errorf("the cluster did not settle after starting: %w", err)
	}
	bn := &bench{api: api, c: c, leader: c.Servers[leader], o: o}
	res.LoadBefore = machineLoad()
	defer func() { res.LoadAfter = machineLoad() }()
	for _, conc := range o.concurrency {
		for _, b := range brokers {
			run := Run{Broker: b.kind, Concurrency: conc}
			fmt.Fprintf(os.Stderr, "%s, concurrency %d: throughput of %d messages...\n", b.kind, conc, o.messages)
			if run.Throughput, err = bn.throughput(ctx, b, conc); err != nil {
				return res, err
			}
			if o.paceFor > 0 {
				fmt.Fprintf(os.Stderr, "%s, concurrency %d: %d messages/s for %s...\n", b.kind, conc, o.rate, o.paceFor)
				if run.Paced, err = bn.paced(ctx, b, conc); err != nil {
					return res, err
				}
			}
			res.Runs = append(res.Runs, run)
		}
	}
	return res, nil
}

// dest names the queue or topic of a phase at a concurrency.
func dest(phase string, conc int) string { return fmt.Sprintf("bench-%s-c%d", phase, conc) }

func printTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "event source mappings on a 3-server cluster on 127.0.0.1; %s\n", res.Setup)
	fmt.Fprintf(w, "%d CPUs %s, kernel %s, %s; %s\n", res.Machine.NumCPU, res.Machine.CPU, res.Machine.Kernel, res.Machine.Go, res.Machine.Date)
	fmt.Fprintf(w, "machine load before: %s; after: %s\n\n", res.LoadBefore, res.LoadAfter)
	fmt.Fprintf(w, "throughput: messages pre-loaded, timed from the mapping's creation (goal >= %.0f messages/s)\n", res.GoalPerS)
	fmt.Fprintf(w, "%-8s %4s | %7s %9s %9s %9s | %8s %7s %6s %9s | %s\n",
		"broker", "conc", "msgs", "msgs/s", "progress", "steady/s", "1st ms", "batches", "avg", "inv p50", "CPU s per 1000 messages")
	for _, r := range res.Runs {
		t := r.Throughput
		if t == nil {
			continue
		}
		goal := "below goal"
		if t.PerS >= res.GoalPerS {
			goal = "goal met"
		}
		fmt.Fprintf(w, "%-8s %4d | %7d %9.0f %9.0f %9.0f | %8.0f %7d %6.1f %9.2f | %s; %s\n",
			r.Broker, r.Concurrency, t.Messages, t.PerS, t.ProgressPerS, t.SteadyPerS, t.FirstBatchMS, t.Batches,
			t.MeanBatch, t.Invocation.P50MS, cpuLine(t.CPUPer1000), goal)
	}
	fmt.Fprintf(w, "\npaced: publish -> end of the batch's invocation (record start + duration)\n")
	fmt.Fprintf(w, "%-8s %4s | %6s %7s %7s | %8s %8s %8s %8s | %7s %6s\n",
		"broker", "conc", "rate", "sent", "found", "p50 ms", "p90 ms", "p99 ms", "max ms", "batches", "avg")
	for _, r := range res.Runs {
		p := r.Paced
		if p == nil {
			continue
		}
		cut := ""
		if p.Truncated {
			cut = " (records cut at the API's 10,000: not all found)"
		}
		fmt.Fprintf(w, "%-8s %4d | %6.0f %7d %7d | %8.2f %8.2f %8.2f %8.2f | %7d %6.1f%s\n",
			r.Broker, r.Concurrency, p.RatePerS, p.Sent, p.Latency.N, p.Latency.P50MS, p.Latency.P90MS, p.Latency.P99MS,
			p.Latency.MaxMS, p.Batches, p.MeanBatch, cut)
	}
	fmt.Fprintln(w)
	for _, n := range res.LogNotes {
		fmt.Fprintf(w, "log of %s: %d warnings, %d errors\n", n.Process, n.Warnings, n.Errors)
		for _, m := range n.Samples {
			fmt.Fprintf(w, "   %s\n", m)
		}
	}
}

func cpuLine(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"leader", "followers", "worker", "broker", "bench"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// machineLoad is /proc/loadavg's three averages and the CPU pressure
// (PSI "some" avg10), as "load 1.00 0.50 0.20, cpu pressure 12.34%".
func machineLoad() string {
	out := "load ?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			out = "load " + strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "avg10="); ok {
				return out + ", cpu pressure " + v + "%"
			}
		}
	}
	return out
}
