// Package cli owns the `nimbus` command line (docs/spec.md §4): parsing,
// the exit-code contract and rendering. It talks to servers only through
// pkg/client and starts a local node through internal/node.
//
// Exit codes: 0 success; 1 the function ran and returned an error; 2 bad
// usage or invalid local input; 3 the platform refused or failed.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// Exit codes of the nimbus binary.
const (
	ExitOK            = 0
	ExitFunctionError = 1
	ExitUsage         = 2
	ExitPlatform      = 3
)

// DefaultURL is the server the CLI talks to when neither --url nor
// NIMBUS_URL is set.
const DefaultURL = "http://127.0.0.1:8080"

// Env is everything the CLI takes from its process. The zero value of a
// field means "the real one" only where noted.
type Env struct {
	Args   []string // without the program name
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up environment variables; nil means none are set.
	Getenv func(string) string
	// Dir is the directory relative paths are resolved against; "" means
	// the process's working directory.
	Dir string
	// IsTerminal reports whether a stream is an interactive terminal; nil
	// means isCharDevice.
	IsTerminal func(stream any) bool
	// Context ends the command (commands that run until interrupted, like
	// `dev` and `logs -f`, return cleanly when it does); nil means
	// context.Background().
	Context context.Context
	// FollowInstances makes the process-wide runtime settings that follow
	// the load of a node's instances (node.Options.FollowInstances); nil
	// leaves the runtime alone.
	FollowInstances func(ctx context.Context, busy func() int)
}

// Main runs the CLI as a process does: e's streams and arguments, the
// real environment, and a context cancelled by SIGINT or SIGTERM (a second
// signal kills the process as usual). It returns the exit code.
func Main(e Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore default handling so a second Ctrl-C kills
	}()
	e.Getenv, e.Context = os.Getenv, ctx
	return Run(e)
}

// Run runs one CLI command and returns its exit code.
func Run(e Env) int {
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.IsTerminal == nil {
		e.IsTerminal = isCharDevice
	}
	if e.Context == nil {
		e.Context = context.Background()
	}
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	a := &app{env: e}
	root := a.rootCommand()
	root.SetArgs(e.Args)
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	err := root.ExecuteContext(e.Context)
	return a.exitCode(err)
}

// app is the state of one Run: the environment and the global flags.
type app struct {
	env       Env
	url       string
	token     string
	output    string
	ca        string
	insecure  bool
	namespace string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "nimbus",
		Short:         "Nimbus runs Python functions on your own machines",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output == "csv" && cmd.Annotations[csvAnnotation] == "" {
				return usagef("-o csv is for nimbus usage and nimbus cost; here -o must be table or json")
			}
			if a.output != "table" && a.output != "json" && a.output != "csv" {
				return usagef("-o must be table, json or csv (usage and cost), not %q", a.output)
			}
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "server URL (env NIMBUS_URL, default "+DefaultURL+")")
	pf.StringVar(&a.token, "token", "", "API key (env NIMBUS_TOKEN; default ./.nimbus/admin.token for a local server)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json (and csv for usage and cost)")
	pf.StringVar(&a.ca, "ca", "", "PEM file of the CA that signed the server's TLS certificate")
	pf.StringVar(&a.namespace, "namespace", "", "namespace to act in (env NIMBUS_NAMESPACE; admin keys choose, other keys have their own; default \"default\")")
	pf.BoolVar(&a.insecure, "insecure", false, "allow sending the API key over plain http:// to a non-loopback address")
	root.AddCommand(
		a.devCommand(),
		a.serverCommand(),
		a.workerCommand(),
		a.initCommand(),
		a.deployCommand(),
		a.invokeCommand(),
		a.runCommand(),
		a.lsCommand(),
		a.getCommand(),
		a.rmCommand(),
		a.logsCommand(),
		a.invocationsCommand(),
		a.clusterCommand(),
		a.deadlettersCommand(),
		a.eventsCommand(),
		a.subscriptionsCommand(),
		a.keysCommand(),
		a.namespacesCommand(),
		a.auditCommand(),
		a.usersCommand(),
		a.schedulesCommand(),
		a.sourcesCommand(),
		a.topicsCommand(),
		a.urlCommand(),
		a.testEventsCommand(),
		a.pricesCommand(),
		a.usageCommand(),
		a.costCommand(),
		a.budgetsCommand(),
		a.runtimesCommand(),
		a.buildsCommand(),
		a.layersCommand(),
		a.publishVersionCommand(),
		a.versionsCommand(),
		a.aliasesCommand(),
		a.operatorCommand(),
		a.webhooksCommand(),
		a.versionCommand(),
		a.benchCommand(),
	)
	return root
}

// json reports whether -o json was given.
func (a *app) json() bool { return a.output == "json" }

// path resolves p against Env.Dir.
func (a *app) path(p string) string {
	if a.env.Dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.env.Dir, p)
}

// serverURL is --url, else NIMBUS_URL, else DefaultURL.
func (a *app) serverURL() string {
	if a.url != "" {
		return a.url
	}
	if u := a.env.Getenv("NIMBUS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// apiToken is --token, else NIMBUS_TOKEN, else the admin token of a local
// `nimbus dev` in ./.nimbus when the server is on a loopback address.
func (a *app) apiToken() string {
	if a.token != "" {
		return a.token
	}
	if t := a.env.Getenv("NIMBUS_TOKEN"); t != "" {
		return t
	}
	if !isLoopbackURL(a.serverURL()) {
		return ""
	}
	b, err := os.ReadFile(a.path(filepath.Join(".nimbus", "admin.token")))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// client returns a client for the configured server: over TLS with --ca
// trusted when given, and refusing to send a key in the clear to a
// non-loopback address unless --insecure.
func (a *app) client() *client.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if a.ca != "" {
		if pem, err := os.ReadFile(a.path(a.ca)); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
	guard := &cleartextGuard{next: tr, allow: a.insecure}
	return client.New(a.serverURL(), a.apiToken(), client.WithUserAgent("nimbus-cli/"+buildVersion()),
		client.WithHTTPClient(&http.Client{Transport: guard}), client.WithNamespace(a.ns()))
}

// ns is the namespace asked for with --namespace or NIMBUS_NAMESPACE
// ("": the key's own, or default for an admin).
func (a *app) ns() string {
	if a.namespace != "" {
		return a.namespace
	}
	return a.env.Getenv("NIMBUS_NAMESPACE")
}

// errCleartextKey refuses to send an API key over plain HTTP to another
// machine.
var errCleartextKey = errors.New("refusing to send the API key over plain http:// to a non-loopback address: use https:// (with --ca for a private CA) or --insecure")

// cleartextGuard is the transport that enforces errCleartextKey.
type cleartextGuard struct {
	next  http.RoundTripper
	allow bool
}

func (g *cleartextGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if !g.allow && r.URL.Scheme == "http" && r.Header.Get("Authorization") != "" && !isLoopbackURL(r.URL.String()) {
		return nil, errCleartextKey
	}
	return g.next.RoundTrip(r)
}

// isLoopbackURL reports whether u names localhost or a loopback IP.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := p.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isCharDevice reports whether stream is an *os.File on a character device
// (a terminal).
func isCharDevice(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitError carries an exit code to Run. A nil err means the message was
// already printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usagef is a bad-usage or invalid-local-input error (exit 2).
func usagef(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// usageArgs wraps a cobra argument validator so its errors exit with 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
		}
		return nil
	}
}

// platform turns an error of a client call into an exit-3 error with a
// one-line message naming what failed.
func (a *app) platform(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, errCleartextKey) {
		return &exitError{code: ExitUsage, err: errCleartextKey}
	}
	return &exitError{code: ExitPlatform, err: errors.New(a.describe(err))}
}

// describe renders a platform failure for a human, on one line.
func (a *app) describe(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%s (%d %s)", oneLine(ae.Message), ae.Status, ae.Code)
		if ae.RetryAfter > 0 {
			msg += fmt.Sprintf("; retry after %s", ae.RetryAfter)
		}
		if ae.Status == 401 && a.apiToken() == "" {
			msg += "; no API key: set --token or NIMBUS_TOKEN"
		}
		return msg
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out talking to " + a.serverURL()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		msg := fmt.Sprintf("cannot reach %s: connection refused", a.serverURL())
		if isLoopbackURL(a.serverURL()) {
			msg += ` — is "nimbus dev" running?`
		}
		return msg
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("cannot reach %s: %s", a.serverURL(), oneLine(rootCause(ue.Err).Error()))
	}
	return oneLine(err.Error())
}

// rootCause unwraps err down to its innermost error.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// exitCode prints err (if it has something to say) and maps it to an exit
// code. Errors that are not exitErrors come from cobra itself (unknown
// command, ...) and are usage errors.
func (a *app) exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(a.env.Stderr, "nimbus: %s\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(a.env.Stderr, "nimbus: %s\nRun 'nimbus --help' for usage.\n", err)
	return ExitUsage
}
