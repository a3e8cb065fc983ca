package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Publish messages to topics that fan out to subscribed functions",
		Long: "A topic fans each message published to it out to its subscribed functions: one\n" +
			"asynchronous invocation per subscriber whose filters match, with the function's\n" +
			"retries, dead letters and destinations. Each gets an SNS-shaped event whose\n" +
			"Records[0].Sns.Message is the message's JSON text.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listTopics(cmd) },
	}
	var description string
	create := &cobra.Command{Use: "create TOPIC", Short: "Create a topic, or change its description", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, created, err := a.client().PutTopic(cmd.Context(), client.Topic{Name: args[0], Description: description})
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, t)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			_, err = fmt.Fprintf(a.env.Stdout, "topic %s %s\n", t.Name, verb)
			return err
		}}
	create.Flags().StringVar(&description, "description", "", "what the topic carries")

	ls := &cobra.Command{Use: "ls", Short: "List topics", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listTopics(cmd) }}
	get := &cobra.Command{Use: "get TOPIC", Short: "Describe a topic: its subscribers and publish count", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.client().GetTopic(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, t)
			}
			return printTopic(a.env.Stdout, t)
		}}
	rm := &cobra.Command{Use: "rm TOPIC", Short: "Delete a topic and its subscriptions", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteTopic(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			_, err := fmt.Fprintf(a.env.Stdout, "topic %s deleted\n", args[0])
			return err
		}}
	cmd.AddCommand(create, ls, get, rm, a.publishCommand(), a.subscribeTopicCommand(), a.unsubscribeTopicCommand())
	return cmd
}

func (a *app) publishCommand() *cobra.Command {
	var data, id string
	cmd := &cobra.Command{
		Use:   "publish TOPIC --data JSON [--id ID]",
		Short: "Publish a message; prints its ID once it is committed",
		Long: "Publish a JSON message (at most 256 KB): --data JSON, --data @FILE (@- for stdin),\n" +
			"else stdin when it is not a terminal. The answer comes once the message and one\n" +
			"queued event per matching subscriber are committed. A publish sent again with the same\n" +
			"--id (after an error whose outcome is unknown) does not deliver the message twice.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			given := cmd.Flags().Changed("data")
			if !given && a.env.IsTerminal(a.env.Stdin) {
				return usagef("give the message: --data JSON, --data @FILE, or on stdin")
			}
			msg, err := a.readEvent(given, data)
			if err != nil {
				return err
			}
			res, err := a.client().Publish(cmd.Context(), args[0], id, msg)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, res)
			}
			_, err = fmt.Fprintf(a.env.Stdout, "message %s published; subscribers it went to: %d\n", res.MessageID, res.Subscribers)
			return err
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "message JSON, or @FILE to read it from a file (@- for stdin)")
	cmd.Flags().StringVar(&id, "id", "", "the message's ID (default: one the server gives it)")
	return cmd
}

func (a *app) subscribeTopicCommand() *cobra.Command {
	var (
		function string
		filters  []string
	)
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC --function NAME [--filter PATH=VALUE ...]",
		Short: "Subscribe a function to a topic, or replace its filters",
		Long: "Subscribe a function of the same namespace. With filters, it gets only the messages\n" +
			"whose field at each PATH ($.type, type, detail.kind) equals VALUE: a string equal to\n" +
			"it, or a number, true, false or null written as it. Every filter must match.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if function == "" {
				return usagef("--function is required")
			}
			sub := client.TopicSubscriber{Function: function}
			for _, f := range filters {
				path, value, ok := strings.Cut(f, "=")
				if !ok || path == "" {
					return usagef("--filter %q is not PATH=VALUE", f)
				}
				sub.Filters = append(sub.Filters, client.TopicFilter{Path: path, Value: value})
			}
			t, created, err := a.client().SubscribeTopic(cmd.Context(), args[0], sub)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, t)
			}
			verb := "now subscribes to"
			if !created {
				verb = "has new filters on"
			}
			_, err = fmt.Fprintf(a.env.Stdout, "function %s %s topic %s\n", function, verb, t.Name)
			return err
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "function to subscribe")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "PATH=VALUE a message must match (repeat: all must match)")
	return cmd
}

func (a *app) unsubscribeTopicCommand() *cobra.Command {
	var function string
	cmd := &cobra.Command{
		Use:   "unsubscribe TOPIC --function NAME",
		Short: "Remove a function's subscription to a topic",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if function == "" {
				return usagef("--function is required")
			}
			if _, err := a.client().UnsubscribeTopic(cmd.Context(), args[0], function); err != nil {
				return a.platform(err)
			}
			_, err := fmt.Fprintf(a.env.Stdout, "function %s unsubscribed from topic %s\n", function, args[0])
			return err
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "function to unsubscribe")
	return cmd
}

func (a *app) listTopics(cmd *cobra.Command) error {
	ts, err := a.client().Topics(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, ts)
	}
	t := newTable(a.env.Stdout, "NAME", "SUBSCRIBERS", "PUBLISHED", "DESCRIPTION")
	for _, tp := range ts {
		t.row(tp.Name, strconv.Itoa(len(tp.Subscribers)), strconv.FormatInt(tp.Published, 10), tp.Description)
	}
	return t.flush()
}

// printTopic describes one topic: its fields, then its subscribers.
func printTopic(w io.Writer, tp client.Topic) error {
	t := newTable(w)
	t.row("name:", tp.Name)
	t.row("namespace:", client.NamespaceOf(tp.Namespace))
	t.row("description:", tp.Description)
	t.row("published:", strconv.FormatInt(tp.Published, 10))
	t.row("last message:", tp.LastMessage)
	t.row("created:", tp.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(tp.Subscribers) == 0 {
		_, err := fmt.Fprintln(w, "no subscribers")
		return err
	}
	st := newTable(w, "SUBSCRIBER", "FILTERS")
	for _, s := range tp.Subscribers {
		var fs []string
		for _, f := range s.Filters {
			fs = append(fs, f.Path+"="+f.Value)
		}
		st.row(s.Function, strings.Join(fs, " "))
	}
	return st.flush()
}
