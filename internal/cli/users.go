package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// maxPasswordInput bounds what --password-stdin reads.
const maxPasswordInput = 4096

func (a *app) usersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Dashboard users: create, list, remove, set a password (admin)",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listUsers(cmd) },
	}
	var req client.UserRequest
	var create struct{ stdin bool }
	createCmd := &cobra.Command{
		Use:   "create NAME --role admin|developer|viewer [--namespace NS] --password-stdin",
		Short: "Create a user; the password is read from standard input",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Role == "" {
				return usagef("--role is required (admin, developer or viewer)")
			}
			pw, err := a.readPassword(create.stdin)
			if err != nil {
				return err
			}
			req.Name, req.Password = args[0], pw
			u, err := a.client().CreateUser(cmd.Context(), req)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, u)
			}
			fmt.Fprintf(a.env.Stdout, "user %s (%s) created\n", u.Name, u.Role)
			return nil
		},
	}
	createCmd.Flags().StringVar(&req.Role, "role", "", "admin, developer or viewer")
	createCmd.Flags().StringVar(&req.Namespace, "namespace", "", "the user's namespace (default: the default namespace)")
	createCmd.Flags().BoolVar(&create.stdin, "password-stdin", false, "read the password from standard input (required)")
	ls := &cobra.Command{Use: "ls", Short: "List users (never their passwords)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listUsers(cmd) }}
	rm := &cobra.Command{Use: "rm NAME", Short: "Remove a user and end their sessions", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteUser(cmd.Context(), args[0]); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "user %s removed\n", args[0])
			return nil
		}}
	var passwdStdin bool
	passwd := &cobra.Command{Use: "passwd NAME --password-stdin", Short: "Set a user's password (their other sessions end)",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := a.readPassword(passwdStdin)
			if err != nil {
				return err
			}
			if err := a.client().SetPassword(cmd.Context(), args[0], pw, ""); err != nil {
				return a.platform(err)
			}
			fmt.Fprintf(a.env.Stdout, "password of %s changed\n", args[0])
			return nil
		}}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the new password from standard input (required)")
	cmd.AddCommand(createCmd, ls, rm, passwd)
	return cmd
}

// readPassword reads a password from standard input: its first line,
// without the line ending. Passwords are never taken as arguments, which
// other users of the machine can see.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if !fromStdin {
		return "", usagef("--password-stdin is required: pipe the password in (a password is never an argument)")
	}
	b, err := io.ReadAll(io.LimitReader(a.env.Stdin, maxPasswordInput+1))
	if err != nil {
		return "", usagef("reading the password: %v", err)
	}
	if len(b) > maxPasswordInput {
		return "", usagef("the password on standard input is over %d bytes", maxPasswordInput)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", usagef("no password on standard input")
	}
	return pw, nil
}

func (a *app) listUsers(cmd *cobra.Command) error {
	users, err := a.client().Users(cmd.Context())
	if err != nil {
		return a.platform(err)
	}
	if a.json() {
		return printJSON(a.env.Stdout, users)
	}
	t := newTable(a.env.Stdout, "NAME", "ROLE", "NAMESPACE", "CREATED", "PASSWORD CHANGED")
	for _, u := range users {
		t.row(u.Name, u.Role, orDash(u.Namespace), humanTime(u.CreatedAt), orDash(humanTime(u.UpdatedAt)))
	}
	return t.flush()
}
