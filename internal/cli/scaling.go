package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"nimbus/pkg/client"
)

// clusterScalingCommand is `nimbus cluster scaling`: the scaling signal
// (GET /v1/scaling) an autoscaler acts on.
func (a *app) clusterScalingCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "scaling",
		Short: "Show how many workers the cluster's load needs, and why (admin)",
		Long: "Show the scaling signal (admin): the ready workers now, the workers the load needs\n" +
			"(invocations running or waiting at the workers plus queued events ready to run, at\n" +
			"the target utilisation of their slots; one more under CPU or memory pressure),\n" +
			"within the server's --scaling-min-workers and --scaling-max-workers, and the reasons.\n" +
			"An autoscaler reads the same figure as nimbus_scaling_desired_workers on /metrics.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := a.client().Scaling(cmd.Context())
			if err != nil {
				return a.platform(err)
			}
			if a.json() {
				return printJSON(a.env.Stdout, sc)
			}
			printScaling(a, sc)
			return nil
		},
	}
}

func printScaling(a *app, sc client.Scaling) {
	w := a.env.Stdout
	bounds := "min " + strconv.Itoa(sc.Workers.Min) + ", "
	if sc.Workers.Max > 0 {
		bounds += "max " + strconv.Itoa(sc.Workers.Max)
	} else {
		bounds += "no max"
	}
	psi := "not reported"
	if p := sc.Load.PSISomeAvg10; p != nil {
		psi = strconv.FormatFloat(*p, 'f', -1, 64) + "%"
	}
	fmt.Fprintf(w, "WORKERS   %d now, %d desired (%s)\n", sc.Workers.Current, sc.Workers.Desired, bounds)
	fmt.Fprintf(w, "SLOTS     %d in use of %d, target %s%%\n", sc.Load.InUse, sc.Load.Slots,
		strconv.FormatFloat(sc.Load.TargetUtilisation*100, 'f', -1, 64))
	fmt.Fprintf(w, "QUEUE     %d events ready to run\n", sc.Load.QueueDepth)
	fmt.Fprintf(w, "PRESSURE  %s (highest PSI some avg10 of the ready workers)\n", psi)
	for _, r := range sc.Workers.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}
