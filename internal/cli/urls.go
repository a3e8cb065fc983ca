package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

func (a *app) urlCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "url",
		Short: "Give functions HTTP endpoints (function URLs)",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listURLs(cmd) },
	}
	var u client.FunctionURL
	var cors client.CORS
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create or replace a function's URL",
		Long: "Every server then serves the function at /fn/NAMESPACE/NAME/ (and every path below it), for any\n" +
			"method, passing each request as an API-Gateway-v2 event. With --auth key (the default) callers\n" +
			"send an API key that may invoke the function; with --auth none anyone may call it, within the\n" +
			"URL's rate (--rate-limit) and the namespace's concurrency. The CORS flags make the platform\n" +
			"answer preflight requests and mark allowed origins. Create replaces every setting of an existing URL.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			u.Function = args[0]
			f := cmd.Flags()
			if f.Changed("cors-origin") || f.Changed("cors-methods") || f.Changed("cors-headers") ||
				f.Changed("cors-expose-headers") || f.Changed("cors-max-age") || f.Changed("cors-credentials") {
				u.CORS = &cors
			}
			out, created, err := a.client().PutFunctionURL(cmd.Context(), u)
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
			fmt.Fprintf(a.env.Stdout, "function URL of %s %s: %s (auth %s)\n", out.Function, verb, out.URL, out.Auth)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&u.Auth, "auth", client.URLAuthKey, "key (callers send an API key that may invoke the function) or none (anyone)")
	f.Float64Var(&u.RateLimit, "rate-limit", 0, "requests per second the URL takes with --auth none (default: the server's per-key rate)")
	f.StringSliceVar(&cors.AllowOrigins, "cors-origin", nil, "allowed origin, such as https://app.example, or * (repeat or separate with commas)")
	f.StringSliceVar(&cors.AllowMethods, "cors-methods", nil, "allowed methods, or * (default: any)")
	f.StringSliceVar(&cors.AllowHeaders, "cors-headers", nil, "allowed request headers, or *")
	f.StringSliceVar(&cors.ExposeHeaders, "cors-expose-headers", nil, "response headers the browser may read")
	f.IntVar(&cors.MaxAge, "cors-max-age", 0, "seconds a browser may cache a preflight answer (at most 86400)")
	f.BoolVar(&cors.AllowCredentials, "cors-credentials", false, "allow credentials (cookies) in cross-origin requests")

	get := &cobra.Command{Use: "get NAME", Short: "Describe a function's URL", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := a.client().GetFunctionURL(cmd.Context(), args[0])
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, out)
			}
			return printURL(a.env.Stdout, out)
		}}
	ls := &cobra.Command{Use: "ls", Short: "List function URLs", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listURLs(cmd) }}
	rm := &cobra.Command{Use: "rm NAME", Short: "Remove a function's URL (the function stays)", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteFunctionURL(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "function URL of %s removed\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, get, ls, rm)
	return cmd
}

func (a *app) listURLs(cmd *cobra.Command) error {
	urls, err := a.client().FunctionURLs(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, urls)
	}
	t := newTable(a.env.Stdout, "FUNCTION", "AUTH", "CORS", "URL")
	for _, u := range urls {
		t.row(u.Function, u.Auth, corsSummary(u.CORS), u.URL)
	}
	return t.flush()
}

// corsSummary names a CORS policy's origins, "-" for none.
func corsSummary(c *client.CORS) string {
	if c == nil {
		return "-"
	}
	return strings.Join(c.AllowOrigins, ",")
}

// printURL describes one function URL as a table of fields.
func printURL(w io.Writer, u client.FunctionURL) error {
	rate := "the server's per-key rate"
	if u.RateLimit > 0 {
		rate = strconv.FormatFloat(u.RateLimit, 'g', -1, 64) + " requests/s"
	}
	t := newTable(w)
	t.row("function:", u.Function)
	t.row("namespace:", client.NamespaceOf(u.Namespace))
	t.row("url:", u.URL)
	t.row("auth:", u.Auth)
	if u.Auth == client.URLAuthNone {
		t.row("rate limit:", rate)
	}
	t.row("cors origins:", corsSummary(u.CORS))
	if c := u.CORS; c != nil {
		t.row("cors methods:", strings.Join(c.AllowMethods, ","))
		t.row("cors headers:", strings.Join(c.AllowHeaders, ","))
		t.row("cors expose headers:", strings.Join(c.ExposeHeaders, ","))
		t.row("cors max age:", strconv.Itoa(c.MaxAge))
		t.row("cors credentials:", strconv.FormatBool(c.AllowCredentials))
	}
	t.row("created:", u.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	t.row("updated:", u.UpdatedAt.Format("2006-01-02 15:04:05 MST"))
	return t.flush()
}
