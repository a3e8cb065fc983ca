package service

import (
	"context"
	"slices"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// maxLayerDescription bounds a layer's description.
const maxLayerDescription = 256

// PublishLayer stores zip as the next version of layer name in
// namespace ns, for runtimes (any, if none): the zip is checked as a
// package is (no path out of it, within 250 MB unzipped), stored and
// replicated like code, then the version committed.
func (s *Service) PublishLayer(ctx context.Context, ns, name string, runtimes []string, description string, zip []byte) (model.Layer, error) {
	if !codepkg.ValidLayerName(name) {
		return model.Layer{}, state.Errorf(state.ErrInvalid, "layer name %q must be 1-64 characters of letters, digits, '-' and '_'", name)
	}
	for i, rt := range runtimes {
		if !codepkg.ValidRuntime(rt) {
			return model.Layer{}, state.Errorf(state.ErrInvalid, "runtime %q must be of the form python3.X, e.g. python3.11, or provided", rt)
		}
		runtimes[i] = codepkg.CanonicalRuntime(rt) // as functions store it
	}
	if len(description) > maxLayerDescription {
		return model.Layer{}, state.Errorf(state.ErrInvalid, "the description is %d bytes; at most %d", len(description), maxLayerDescription)
	}
	info, err := codepkg.Validate(zip, codepkg.LayerLimits())
	if err != nil {
		return model.Layer{}, err
	}
	digest, err := s.d.Blobs.Put(zip)
	if err != nil {
		return model.Layer{}, err
	}
	if s.d.ReplicateBlob != nil {
		if err := s.d.ReplicateBlob(ctx, zip); err != nil {
			return model.Layer{}, err
		}
	}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PublishLayer{Layer: model.Layer{Namespace: ns, Name: name, SHA256: digest, Size: int64(len(zip)),
		Unpacked: info.UnzippedSize, Runtimes: runtimes, Description: description, CreatedAt: time.Now().UTC()}})
	if err != nil {
		return model.Layer{}, err
	}
	s.log.Info("layer published", "namespace", ns, "layer", name, "version", res.Layer.Version, "sha256", digest)
	return res.Layer, nil
}

// Layers lists namespace ns's layer versions (of name alone unless "").
func (s *Service) Layers(ns, name string) []model.Layer { return s.store.Layers(ns, name) }

// Layer is version of layer name (0: the latest).
func (s *Service) Layer(ns, name string, version int64) (model.Layer, error) {
	return s.store.Layer(ns, name, version)
}

// DeleteLayer removes a layer version no function mounts.
func (s *Service) DeleteLayer(ctx context.Context, ns, name string, version int64) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteLayer{Namespace: ns, Name: name, Version: version})
	return err
}

// resolveLayers turns a deploy's NAME:VERSION layers into the versions
// it mounts: each must exist in the namespace and be built for the
// function's runtime.
func (s *Service) resolveLayers(ns string, cfg model.FunctionConfig) ([]model.LayerRef, error) {
	var refs []model.LayerRef
	for _, ref := range cfg.Layers {
		name, version, err := codepkg.ParseLayerRef(ref)
		if err != nil {
			return nil, state.Errorf(state.ErrInvalid, "%v", err)
		}
		l, err := s.store.Layer(ns, name, version)
		if err != nil {
			return nil, state.Errorf(state.ErrInvalid, "layer %s does not exist in namespace %s (nimbus layers ls)", ref, model.NamespaceOf(ns))
		}
		if len(l.Runtimes) > 0 && !slices.Contains(l.Runtimes, cfg.Runtime) {
			return nil, state.Errorf(state.ErrInvalid, "layer %s is built for %s; the function runs %s", ref, strings.Join(l.Runtimes, ", "), cfg.Runtime)
		}
		refs = append(refs, model.LayerRef{Name: l.Name, Version: l.Version, SHA256: l.SHA256, Unpacked: l.Unpacked})
	}
	return refs, nil
}

// checkUnpacked refuses code (unzipped bytes), layers and a dependency
// layer that together unzip to more than model.MaxUnpacked.
func checkUnpacked(code int64, refs []model.LayerRef, deps *model.DepLayer) error {
	total := code
	for _, r := range refs {
		total += r.Unpacked
	}
	if deps != nil {
		total += deps.Unpacked
	}
	if total > model.MaxUnpacked {
		return state.Errorf(codepkg.ErrTooLarge, "the code, its layers and its dependencies unzip to %d MB together; at most %d MB",
			total>>20, model.MaxUnpacked>>20)
	}
	return nil
}
