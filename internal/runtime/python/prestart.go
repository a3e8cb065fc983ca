package python

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"nimbus/internal/sandbox"
)

// PrestartConfig describes an instance started before its function is
// known: the runtime and the sandbox, not the code.
type PrestartConfig struct {
	Runtime     Runtime
	Bootstrap   string
	Executor    sandbox.Executor // must implement sandbox.CodeAttacher
	TmpMB       int
	LogLimit    int
	ResultLimit int
	// Layers are mounted from the start (a dependency set), and the
	// bootstrap imports the Preload modules from them while it waits:
	// only a function with exactly these layers may take the instance.
	Layers  []sandbox.Mount
	SysPath []string
	Preload []string
	// Env are the function's own variables, set while the Preload
	// modules are imported (only functions with these may take it).
	Env map[string]string
}

// Prestart starts an interpreter with the bootstrap in a complete sandbox
// whose code directory is still empty; it waits there, having run no
// function code, until Assign gives it a function. Isolation is exactly
// that of a fresh start: the sandbox is built before anything of the
// function exists in it.
func Prestart(cfg PrestartConfig) (*Instance, error) {
	if _, ok := cfg.Executor.(sandbox.CodeAttacher); !ok {
		return nil, errors.New("python: this executor cannot pre-start instances")
	}
	inst, err := spawn(InstanceConfig{
		Runtime: cfg.Runtime, Bootstrap: cfg.Bootstrap, Executor: cfg.Executor, TmpMB: cfg.TmpMB,
		LogLimit: cfg.LogLimit, ResultLimit: cfg.ResultLimit, MemoryMB: DefaultMemoryMB,
		Layers: cfg.Layers, SysPath: cfg.SysPath, Preload: cfg.Preload, Env: cfg.Env,
	}, true)
	if err != nil {
		return nil, err
	}
	inst.prestarted = true
	if len(cfg.Preload) > 0 {
		// Ready only once the modules are imported: a cold start that
		// took it sooner would wait for them.
		f := inst.exchange(context.Background(), time.Now().Add(defaultStartTimeout))
		if f.err != nil || !bytes.Equal(f.body, []byte(`{"preloaded":true}`)) {
			err := inst.exitError(fmt.Errorf("python: importing %s ahead: %v", strings.Join(cfg.Preload, ", "), f.err))
			inst.Close()
			return nil, err
		}
		inst.takeLog() // what the imports printed is no invocation's
	}
	return inst, nil
}

// Assign gives a pre-started instance its function: the code is attached
// read-only, the memory limit set, and the init frame (with the
// function's environment) sent; it returns once the handler is imported,
// as Start does. cfg's Runtime, Bootstrap and Executor are the
// instance's own. On failure the instance is closed.
func (i *Instance) Assign(ctx context.Context, cfg InstanceConfig) error {
	if !i.prestarted || i.assigned {
		return errors.New("python: Assign needs a pre-started, unassigned instance")
	}
	i.assigned = true
	if cfg.Runtime.Name != i.cfg.Runtime.Name || cfg.Runtime.Executable != i.cfg.Runtime.Executable {
		i.Close()
		return fmt.Errorf("python: instance runs %s, not %s", i.cfg.Runtime.Name, cfg.Runtime.Name)
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	if pr, ok := i.proc.(sandbox.Prioritized); ok {
		if err := pr.Foreground(); err != nil {
			i.Close()
			return fmt.Errorf("python: normal priority: %w", err)
		}
	}
	attacher := i.cfg.Executor.(sandbox.CodeAttacher)
	if err := attacher.AttachCode(i.proc, cfg.CodeDir, cfg.MemoryMB); err != nil {
		i.Close()
		return fmt.Errorf("python: attach code: %w", err)
	}
	keep := i.cfg
	i.cfg = cfg
	i.cfg.Runtime, i.cfg.Bootstrap, i.cfg.Executor = keep.Runtime, keep.Bootstrap, keep.Executor
	i.cfg.Layers, i.cfg.SysPath, i.cfg.Preload = keep.Layers, keep.SysPath, keep.Preload
	i.cfg.LogLimit, i.cfg.ResultLimit, i.cfg.TmpMB = keep.LogLimit, keep.ResultLimit, keep.TmpMB
	i.version = cfg.reportedVersion()
	i.logStream = newLogStream(i.version)
	env := map[string]string{}
	for _, kv := range environ(i.cfg, i.version, i.logStream) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return i.init(ctx, env)
}
