package cli

import (
	"os"

	"github.com/spf13/cobra"

	"nimbus/internal/benchmark"
)

func (a *app) benchCommand() *cobra.Command {
	var quick, urls bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure cold starts, warm invokes, throughput and memory against baselines",
		Long: "Measure a Nimbus end to end: cold and warm invokes of no-op functions,\n" +
			"throughput at concurrency 32 and the memory of an idle instance, beside bare\n" +
			"Python start-up, HTTP and pipe round trips on this machine; the same load through\n" +
			"the Lambda API's Invoke (SigV4-signed) and the warm invokes of a custom runtime\n" +
			"(runtime: provided, a Go bootstrap built with the go command if there is one).\n" +
			"Without --url it starts its own `nimbus dev` on 127.0.0.1 (a free port, a\n" +
			"temporary data directory) and stops it at the end; with --url it measures that server with\n" +
			"--token (or NIMBUS_TOKEN) and deletes the functions it deployed. --quick takes\n" +
			"well under two minutes. -o json prints one JSON object; progress goes to stderr.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			exe, err := os.Executable()
			if err != nil {
				return a.platform(err)
			}
			o := benchmark.Options{Quick: quick, Progress: a.env.Stderr, Executable: exe, URLs: urls}
			if a.url != "" {
				o.URL, o.Token = a.url, a.apiToken()
			}
			rep, err := benchmark.Run(cmd.Context(), o)
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, rep.Result)
			}
			return benchmark.WriteTable(a.env.Stdout, rep)
		},
	}
	cmd.Flags().BoolVar(&quick, "quick", false, "the short run: 10 cold functions, 200 warm invokes, 3 s of throughput")
	cmd.Flags().BoolVar(&urls, "urls", false, "also measure function URL throughput against direct invokes in alternating rounds (url_ratio)")
	return cmd
}
