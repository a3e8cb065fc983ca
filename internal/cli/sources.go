package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) sourcesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sources",
		Short: "Feed functions from RabbitMQ queues, Kafka topics and NATS subjects",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listSources(cmd) },
	}
	var src client.Source
	var window, delay time.Duration
	create := &cobra.Command{
		Use:   "create NAME --function FN --type rabbitmq|kafka|nats --url URL --queue|--topic|--subject NAME",
		Short: "Create or replace an event source mapping",
		Long: "The mapping's consumer runs on the leader. It gives the function batches of messages as\n" +
			`{"Records": [...]}` + " and acknowledges each message only after the function succeeded with it;\n" +
			"a handler may return {\"batchItemFailures\": [{\"itemIdentifier\": ID}]} to retry only those.\n" +
			"Failed messages are retried with backoff, then go to the dead-letter destination.\n" +
			"URLs: amqp://user:password@host:5672/vhost, kafka://host:9092[,host:9092], nats://host:4222.\n" +
			"A password in the URL is kept as a secret and shown as ****.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			src.Name = args[0]
			if src.Function == "" || src.Type == "" || src.URL == "" {
				return usagef("--function, --type and --url are required")
			}
			src.BatchWindow, src.RetryDelay = client.Duration(window), client.Duration(delay)
			out, created, err := a.client().PutSource(cmd.Context(), src)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, out)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(a.env.Stdout, "event source mapping %s %s: %s %s -> function %s\n", out.Name, verb, out.Type, sourceTarget(out), out.Function)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&src.Function, "function", "", "function to run with the messages")
	f.StringVar(&src.Type, "type", "", "rabbitmq, kafka or nats")
	f.StringVar(&src.URL, "url", "", "the broker's URL")
	f.StringVar(&src.Queue, "queue", "", "RabbitMQ queue to consume")
	f.StringVar(&src.Topic, "topic", "", "Kafka topic to consume")
	f.StringVar(&src.Subject, "subject", "", "NATS JetStream subject to consume")
	f.StringVar(&src.Stream, "stream", "", "NATS JetStream stream (default: the one that captures --subject)")
	f.IntVar(&src.BatchSize, "batch-size", 0, "most messages per invocation, 1..10000 (default 100)")
	f.DurationVar(&window, "batch-window", 0, "how long to gather a batch before invoking (default 0: what is ready)")
	f.IntVar(&src.Concurrency, "concurrency", 0, "batches in flight at once, 1..100 (default 1, which keeps order)")
	f.StringVar(&src.StartFrom, "start-from", "", "latest (default) or earliest")
	f.StringVar(&src.Format, "format", "", "json (default: bodies are JSON) or raw (passed as base64)")
	f.IntVar(&src.Retries, "retries", 0, "retries of a failed message before it is dead-lettered (default 3)")
	f.DurationVar(&delay, "retry-delay", 0, "delay before the first retry, doubling after (default 1s)")
	f.StringVar(&src.DeadLetter, "dead-letter", "", "queue, topic or subject on the broker for messages given up on (default: Nimbus's dead letters)")
	f.BoolVar(&src.Disabled, "disabled", false, "create it disabled")

	ls := &cobra.Command{Use: "ls", Short: "List event source mappings", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listSources(cmd) }}
	get := &cobra.Command{Use: "get NAME", Short: "Describe an event source mapping: settings, state, lag, throughput, errors", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().GetSource(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, s)
			}
			return printSource(a.env.Stdout, s)
		}}
	rm := &cobra.Command{Use: "rm NAME", Short: "Delete an event source mapping", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteSource(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "event source mapping %s deleted\n", args[0])
			return nil
		}}
	toggle := func(enabled bool, use, short string) *cobra.Command {
		return &cobra.Command{Use: use + " NAME", Short: short, Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := a.client().EnableSource(cmd.Context(), args[0], enabled)
				if err != nil {
					return a.platform(err)
				}
				fmt.Fprintf(a.env.Stdout, "event source mapping %s %sd\n", s.Name, use)
				return nil
			}}
	}
	cmd.AddCommand(create, ls, get, rm, toggle(true, "enable", "Enable an event source mapping"), toggle(false, "disable", "Disable an event source mapping"))
	return cmd
}

func (a *app) listSources(cmd *cobra.Command) error {
	srcs, err := a.client().Sources(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, srcs)
	}
	t := newTable(a.env.Stdout, "NAME", "FUNCTION", "TYPE", "FROM", "STATE", "LAG", "SUCCEEDED", "DEAD-LETTERED")
	for _, s := range srcs {
		t.row(s.Name, s.Function, s.Type, sourceTarget(s), sourceState(s), sourceLag(s.Progress.Lag),
			strconv.FormatInt(s.Progress.Succeeded, 10), strconv.FormatInt(s.Progress.DeadLettered, 10))
	}
	return t.flush()
}

// sourceTarget names what a mapping consumes.
func sourceTarget(s client.Source) string {
	switch {
	case s.Queue != "":
		return "queue " + s.Queue
	case s.Topic != "":
		return "topic " + s.Topic
	}
	return "subject " + s.Subject
}

func sourceState(s client.Source) string {
	switch {
	case s.Disabled:
		return "disabled"
	case s.Progress.State == "":
		return "starting"
	}
	return s.Progress.State
}

func sourceLag(lag int64) string {
	if lag < 0 {
		return "unknown"
	}
	return strconv.FormatInt(lag, 10)
}

// printSource describes one mapping as a table of fields.
func printSource(w io.Writer, s client.Source) error {
	p := s.Progress
	dl := s.DeadLetter
	if dl == "" {
		dl = "Nimbus dead letters (nimbus deadletters)"
	}
	t := newTable(w)
	t.row("name:", s.Name)
	t.row("namespace:", client.NamespaceOf(s.Namespace))
	t.row("function:", s.Function)
	t.row("type:", s.Type)
	t.row("url:", s.URL)
	t.row("from:", sourceTarget(s))
	if s.Stream != "" {
		t.row("stream:", s.Stream)
	}
	t.row("batch:", fmt.Sprintf("%d messages, window %s", s.BatchSize, time.Duration(s.BatchWindow)))
	t.row("concurrency:", strconv.Itoa(s.Concurrency))
	t.row("start from:", s.StartFrom)
	t.row("format:", s.Format)
	t.row("retries:", fmt.Sprintf("%d, first after %s (doubling)", s.Retries, time.Duration(s.RetryDelay)))
	t.row("dead letters:", dl)
	t.row("state:", sourceState(s))
	if p.Error != "" {
		t.row("error:", p.Error)
	}
	if p.Server != "" {
		t.row("consumer on:", p.Server)
	}
	t.row("lag:", sourceLag(p.Lag))
	t.row("throughput:", fmt.Sprintf("%.1f messages/s", p.Rate))
	t.row("received:", fmt.Sprintf("%d (%d delivered again: at most that many duplicates)", p.Received, p.Redelivered))
	t.row("succeeded:", strconv.FormatInt(p.Succeeded, 10))
	t.row("dead-lettered:", fmt.Sprintf("%d (%d malformed)", p.DeadLettered, p.Malformed))
	t.row("invocations:", fmt.Sprintf("%d (%d failed, %d messages retried)", p.Batches, p.Failures, p.Retries))
	if !p.UpdatedAt.IsZero() {
		t.row("reported:", p.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	t.row("created:", s.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	return t.flush()
}
