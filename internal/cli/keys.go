package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/internal/auth"
	"nimbus/pkg/client"
)

func (a *app) keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "API keys: create, list, revoke (admin)",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listKeys(cmd) },
	}
	var req client.KeyRequest
	create := &cobra.Command{
		Use:   "create --role admin|developer|viewer|worker [--namespace NS] [--expires 30d] [--rate-limit N] [--note TEXT]",
		Short: "Create a key; it is printed once, alone on the last line",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Role == "" {
				return usagef("--role is required (admin, developer, viewer or worker)")
			}
			req.Namespace = a.ns() // developer and viewer keys: their namespace (default: default)
			k, err := a.client().CreateKey(cmd.Context(), req)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, k)
			}
			scope := "every namespace"
			if k.Namespace != "" {
				scope = "namespace " + k.Namespace
			}
			fmt.Fprintf(a.env.Stdout, "key %s (%s, %s) created; it is shown only now:\n%s\n", k.ID, k.Role, scope, k.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&req.Role, "role", "", "admin, developer, viewer or worker")
	create.Flags().StringVar(&req.Expires, "expires", "", "lifetime such as 30d or 12h (default: never)")
	create.Flags().Float64Var(&req.RateLimit, "rate-limit", 0, "requests per second (default: the server's)")
	create.Flags().StringVar(&req.Note, "note", "", "what the key is for")
	ls := &cobra.Command{Use: "ls", Short: "List keys (never their secrets)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listKeys(cmd) }}
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke a key, on every server", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RevokeKey(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "key %s revoked\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, ls, revoke, a.awsCredentialsCommand())
	return cmd
}

// awsCredentialsCommand prints a key's AWS credentials for the Lambda
// API (docs/spec.md §15), computed here from the key itself: nothing is
// asked of the server.
func (a *app) awsCredentialsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "aws-credentials [KEY | -]",
		Short: "Print a key's AWS credentials (access key id and secret) for aws lambda and the AWS SDKs",
		Long: "Prints the AWS credentials of KEY (a full key nimbus_<id>_<secret>; - reads it from stdin; default: the key\n" +
			"the CLI uses, --token, NIMBUS_TOKEN or ./.nimbus/admin.token) as shell exports, to eval:\n" +
			"  eval \"$(nimbus keys aws-credentials)\"\n" +
			"  aws lambda list-functions --endpoint-url " + DefaultURL + "\n" +
			"The access key id is the key's id; the secret is derived from the key. -o json prints them as an object.",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			token := a.apiToken()
			if len(args) == 1 {
				token = args[0]
			}
			if token == "-" {
				b, err := io.ReadAll(io.LimitReader(a.env.Stdin, 4096))
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			if token == "" {
				return usagef("no key: give one (nimbus keys aws-credentials nimbus_<id>_<secret>), or set --token or NIMBUS_TOKEN")
			}
			id, secret, err := auth.SigV4SecretOfToken(token)
			if err != nil {
				return usagef("not a Nimbus key (nimbus_<id>_<secret>): %v", err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, map[string]string{"access_key_id": id, "secret_access_key": secret})
			}
			fmt.Fprintf(a.env.Stdout, "export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n", id, secret)
			return nil
		},
	}
}

func (a *app) listKeys(cmd *cobra.Command) error {
	keys, err := a.client().Keys(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, keys)
	}
	t := newTable(a.env.Stdout, "ID", "ROLE", "NAMESPACE", "CREATED", "EXPIRES", "RATE LIMIT", "NOTE")
	for _, k := range keys {
		rate := "-"
		if k.RateLimit > 0 {
			rate = strconv.FormatFloat(k.RateLimit, 'g', -1, 64) + "/s"
		}
		ns := k.Namespace
		if k.Role == "admin" {
			ns = "*"
		}
		t.row(k.ID, k.Role, orDash(ns), humanTime(k.CreatedAt), orDash(humanTime(k.ExpiresAt)), rate, orDash(k.Note))
	}
	return t.flush()
}

func (a *app) auditCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--limit N]",
		Short: "Show the audit log: every change made through the API, who and when (admin)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := a.client().Audit(cmd.Context(), limit)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, entries)
			}
			t := newTable(a.env.Stdout, "TIME", "KEY", "ROLE", "ACTION", "STATUS")
			for _, e := range entries {
				t.row(humanTime(e.Time), e.KeyID, e.Role, e.Action, strconv.Itoa(e.Status))
			}
			return t.flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "newest entries to show")
	return cmd
}
