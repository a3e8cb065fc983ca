package cli

import (
	"github.com/spf13/pflag"

	"nimbus/internal/model"
)

// retentionFlags adds the flags that bound the invocation records a
// server keeps to f, with the defaults of model.DefaultRetention.
func retentionFlags(f *pflag.FlagSet, ret *model.Retention) {
	def := model.DefaultRetention()
	f.DurationVar(&ret.MaxAge, "record-retention", def.MaxAge, "invocation records older than this are dropped (e.g. 168h)")
	f.IntVar(&ret.PerFunction, "records-per-function", def.PerFunction, "invocation records kept per function, newest first")
}

// checkRetention refuses retention flags that would keep nothing.
func checkRetention(ret model.Retention) error {
	if ret.MaxAge <= 0 {
		return usagef("--record-retention must be a positive duration such as 168h, not %v", ret.MaxAge)
	}
	if ret.PerFunction < 1 {
		return usagef("--records-per-function must be 1 or more, not %d", ret.PerFunction)
	}
	return nil
}
