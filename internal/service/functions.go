package service

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/pycheck"
	"nimbus/internal/scan"
	"nimbus/internal/state"
)

// Deployed is what a deploy stored.
type Deployed struct {
	Function model.Function
	Created  bool // a new function, not a new revision
}

// Deploy creates function cfg.Name in namespace ns, or adds a revision to
// it, with the code in zip: the config is defaulted and validated, the
// runtime resolved, the package validated, compiled (never imported) or,
// for the provided runtime, checked for its executable bootstrap, and
// scanned, the code stored and replicated, and only then the revision
// committed. A package with a requirements.txt gets its dependency
// layer first (built, or reused), its build's log written to progress
// as it goes (nil: nobody watches). Nothing is committed unless
// everything is valid, so a refused deploy leaves the previous revision
// serving.
func (s *Service) Deploy(ctx context.Context, ns string, cfg model.FunctionConfig, zip []byte, progress io.Writer) (Deployed, error) {
	codepkg.ApplyDefaults(&cfg)
	if err := codepkg.ValidateConfig(cfg); err != nil {
		return Deployed{}, err
	}
	if err := s.checkReserved(ns, cfg); err != nil {
		return Deployed{}, err
	}
	var err error
	if cfg.Runtime, err = s.pickRuntime(cfg.Runtime); err != nil {
		return Deployed{}, err
	}
	info, err := codepkg.Validate(zip, codepkg.DefaultLimits())
	if err != nil {
		return Deployed{}, err
	}
	if codepkg.IsProvided(cfg.Runtime) {
		// The bootstrap is the program: nothing to compile, but it must
		// be there to run.
		if err := codepkg.CheckBootstrap(zip); err != nil {
			return Deployed{}, err
		}
	} else if s.d.Checker != nil {
		switch err := s.d.Checker.Check(ctx, zip, cfg.Runtime, cfg.Handler); {
		case errors.Is(err, pycheck.ErrNoRuntime):
			s.log.Warn("deploy not compile-checked: this server has no interpreter for its runtime", "namespace", ns, "function", cfg.Name, "runtime", cfg.Runtime)
		case err != nil:
			return Deployed{}, err
		}
	}
	report, err := s.scan(ctx, ns, zip)
	if err != nil {
		return Deployed{}, err
	}
	// The layers are resolved before the build (a bad one costs no
	// build); the whole is measured once the dependency layer is known.
	refs, err := s.resolveLayers(ns, cfg)
	if err != nil {
		return Deployed{}, err
	}
	layer, err := s.buildDeps(ctx, ns, cfg, zip, progress)
	if err != nil {
		return Deployed{}, err
	}
	if err := checkUnpacked(info.UnzippedSize, refs, layer); err != nil {
		return Deployed{}, err
	}
	digest, err := s.d.Blobs.Put(zip)
	if err != nil {
		return Deployed{}, err
	}
	if s.d.ReplicateBlob != nil {
		if err := s.d.ReplicateBlob(ctx, zip); err != nil {
			return Deployed{}, err
		}
	}
	fn := model.Function{FunctionConfig: cfg, Namespace: ns, CodeSHA256: digest, CodeSize: int64(len(zip)), Scan: report, Deps: layer, LayerRefs: refs}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.UpsertFunction{Function: fn, Now: time.Now().UTC()})
	if err != nil {
		return Deployed{}, err
	}
	s.d.Placer.Prefetch(res.Function)
	if res.Function.Provisioned > 0 {
		go s.d.Placer.Provision(res.Function, res.Function.Provisioned) // the leader renews it
	}
	s.log.Info("function deployed", "namespace", ns, "function", cfg.Name, "revision", res.Function.Revision, "sha256", digest)
	return Deployed{Function: res.Function, Created: res.Created}, nil
}

// checkReserved answers early, from this server's state, a reserved
// concurrency the namespace has no room for; the FSM checks it again when
// it applies the deploy.
func (s *Service) checkReserved(ns string, cfg model.FunctionConfig) error {
	if cfg.ReservedConcurrency == nil {
		return nil
	}
	limit, reserved := s.store.ConcurrencyLimit(ns)
	if old, err := s.store.Function(model.QualifiedName(ns, cfg.Name)); err == nil && old.ReservedConcurrency != nil {
		reserved -= *old.ReservedConcurrency
	}
	return state.CheckReserved(ns, *cfg.ReservedConcurrency, limit, reserved)
}

// scan runs the namespace's code-scanning policy over zip: nil when the
// policy is off, ErrScanBlocked when it finds what the policy blocks.
func (s *Service) scan(ctx context.Context, ns string, zip []byte) (*model.ScanReport, error) {
	policy := s.scanPolicy(ns)
	if policy.Mode == "" || policy.Mode == scan.ModeOff {
		return nil, nil
	}
	report, err := s.d.Scanner.Scan(ctx, zip)
	if err != nil {
		return nil, err
	}
	if bad := policy.Blocking(report); len(bad) > 0 {
		return nil, state.Errorf(ErrScanBlocked, "the code scan blocks this deploy: %d finding(s) at %s or above, first %s:%d %s (%s)",
			len(bad), policy.BlockAt, bad[0].File, bad[0].Line, bad[0].Text, bad[0].TestID)
	}
	return report, nil
}

// scanPolicy is the namespace's code-scanning policy, or the server's.
func (s *Service) scanPolicy(ns string) scan.Policy {
	if n, err := s.store.Namespace(ns); err == nil && n.ScanPolicy != "" {
		if p, err := scan.ParsePolicy(n.ScanPolicy); err == nil {
			return p
		}
	}
	return s.d.ScanPolicy
}

// Runtimes lists the Python runtimes the healthy workers offer, newest
// first, with the workers that offer each.
func (s *Service) Runtimes() []model.RuntimeOffer { return s.d.Placer.Offers() }

// pickRuntime resolves "" to the newest runtime the workers offer and
// checks a named one.
func (s *Service) pickRuntime(name string) (string, error) {
	avail := s.d.Placer.Runtimes()
	if len(avail) == 0 {
		return "", state.Errorf(placement.ErrNoWorkers, "no worker offers a Python runtime")
	}
	if name == "" {
		return avail[0], nil
	}
	for _, a := range avail {
		if a == name {
			return name, nil
		}
	}
	return "", state.Errorf(state.ErrInvalid, "unknown runtime %q: the workers can run %s", name, strings.Join(avail, ", "))
}

// Removed is what a removal removed: the function, and what named it
// when force removed that too (nil otherwise).
type Removed struct {
	Function   model.Function
	Dependents *model.FunctionDependents
}

// RemoveFunction removes function name of namespace ns; while schedules,
// subscriptions, other functions' destinations or topic subscriptions
// name it, only with force, which removes them too (ErrConflict otherwise, naming them).
//
// NAME:VERSION removes that version alone (DeleteVersion), as Lambda's
// DeleteFunction with a qualifier does.
func (s *Service) RemoveFunction(ctx context.Context, ns, name string, force bool) (Removed, error) {
	if base, q := model.SplitQualifier(name); q != "" {
		v, err := s.store.Resolve(model.QualifiedName(ns, name), 1)
		if err != nil {
			return Removed{}, err
		}
		if qual, _ := model.ParseQualifier(q); qual.Version == 0 {
			return Removed{}, state.Errorf(state.ErrInvalid, "%s names no published version: remove the function as %s, an alias with nimbus aliases rm", name, base)
		}
		return Removed{Function: v}, s.DeleteVersion(ctx, ns, base, v.Version)
	}
	f, err := s.store.Function(model.QualifiedName(ns, name))
	if err != nil {
		return Removed{}, err
	}
	rm, err := fsm.Apply(ctx, s.d.Control, fsm.RemoveFunction{Namespace: ns, Name: name, Force: force})
	if err != nil {
		return Removed{}, err
	}
	if !rm.Deleted {
		return Removed{}, state.Errorf(state.ErrConflict,
			"function %q is still named by %s: remove them first, or delete with force (nimbus rm --force, ?force=true) to remove them too",
			name, rm.Dependents)
	}
	s.d.Placer.Retire(f.QualifiedName())
	out := Removed{Function: f}
	if !rm.Dependents.Empty() {
		out.Dependents = &rm.Dependents
	}
	return out, nil
}

// Function is function ref of namespace ns: its head, or with a
// qualifier (NAME:VERSION, NAME:ALIAS) that version, an alias's own
// (never the share its routing sends elsewhere).
func (s *Service) Function(ns, ref string) (model.Function, error) {
	if _, q := model.SplitQualifier(ref); q != "" {
		return s.store.Resolve(model.QualifiedName(ns, ref), 1)
	}
	return s.store.Function(model.QualifiedName(ns, ref))
}

// Functions lists namespace ns's functions.
func (s *Service) Functions(ns string) []model.Function { return s.store.Functions(ns) }

// FunctionsAfter is a page of the namespace's functions: the first n
// whose name comes after after, and whether more follow.
func (s *Service) FunctionsAfter(ns, after string, n int) ([]model.Function, bool) {
	return s.store.FunctionsAfter(ns, after, n)
}
