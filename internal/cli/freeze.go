package cli

import (
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// defaultFreezeDelay is how long an idle instance runs on after an
// invocation before the worker freezes it (see worker.Config.FreezeAfter).
const defaultFreezeDelay = 50 * time.Millisecond

// freezeFlags are a worker's --freeze-idle and --freeze-delay.
type freezeFlags struct {
	idle  bool
	delay time.Duration
}

func addFreezeFlags(f *pflag.FlagSet) *freezeFlags {
	ff := &freezeFlags{}
	f.BoolVar(&ff.idle, "freeze-idle", true, "freeze an instance's processes between invocations, so that nothing it started runs on (default from NIMBUS_FREEZE_IDLE if set)")
	f.DurationVar(&ff.delay, "freeze-delay", defaultFreezeDelay, "how long an instance stays idle before it is frozen (0: as soon as its invocation returns; default from NIMBUS_FREEZE_DELAY if set)")
	return ff
}

// after is worker.Config.FreezeAfter for the flags: negative when
// freezing is off. NIMBUS_FREEZE_IDLE (true/false) stands in for an unset
// --freeze-idle, and NIMBUS_FREEZE_DELAY for an unset --freeze-delay, so
// that the nodes a program starts (nimbus bench's) can be compared with
// and without.
func (ff *freezeFlags) after(a *app, f *pflag.FlagSet) (time.Duration, error) {
	idle := ff.idle
	if !f.Changed("freeze-idle") {
		if v := a.env.Getenv("NIMBUS_FREEZE_IDLE"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return 0, usagef("NIMBUS_FREEZE_IDLE must be true or false, not %q", v)
			}
			idle = b
		}
	}
	delay := ff.delay
	if !f.Changed("freeze-delay") {
		if v := a.env.Getenv("NIMBUS_FREEZE_DELAY"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, usagef("NIMBUS_FREEZE_DELAY must be a duration such as 50ms, not %q", v)
			}
			delay = d
		}
	}
	if delay < 0 {
		return 0, usagef("--freeze-delay must be 0 or more, not %s", delay)
	}
	if !idle {
		return -1, nil
	}
	return delay, nil
}
