package service

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/deps"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// RequirementsFile is the file at a package's root whose requirements
// a deploy builds into the function's dependency layer.
const RequirementsFile = "requirements.txt"

// maxRequirementsFile bounds requirements.txt.
const maxRequirementsFile = 256 << 10

// requirementsOf reads requirements.txt at the root of a package zip
// (already validated); nil when it has none.
func requirementsOf(pkg []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		return nil, err
	}
	for _, f := range zr.File {
		if f.Name != RequirementsFile {
			continue
		}
		if f.UncompressedSize64 > maxRequirementsFile {
			return nil, fmt.Errorf("%w: %s is over %d KB", deps.ErrInvalidRequirements, RequirementsFile, maxRequirementsFile>>10)
		}
		r, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", codepkg.ErrInvalidPackage, RequirementsFile, err)
		}
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, maxRequirementsFile))
	}
	return nil, nil
}

// buildDeps gives a deploy its dependency layer: nil when the package has
// no requirements; the layer a build of the same request (runtime,
// requirements, index) made before, fetching nothing; or a new build's,
// stored and replicated like code. Every build is recorded, failed ones
// too; a failure is the error, with pip's message. progress receives the
// build's log as it is written (nil: nobody watches).
func (s *Service) buildDeps(ctx context.Context, ns string, cfg model.FunctionConfig, pkg []byte, progress io.Writer) (*model.DepLayer, error) {
	text, err := requirementsOf(pkg)
	if err != nil || text == nil {
		return nil, err
	}
	reqs, err := deps.Parse(text, deps.Policy{})
	if err != nil || len(reqs) == 0 {
		return nil, err
	}
	if codepkg.IsProvided(cfg.Runtime) {
		return nil, state.Errorf(state.ErrInvalid, "runtime %s does not build a %s: a custom runtime's package brings its own dependencies", cfg.Runtime, RequirementsFile)
	}
	b := s.d.Builder
	if b == nil {
		return nil, state.Errorf(deps.ErrCannotBuild, "this server cannot build dependencies (the package has a %s)", RequirementsFile)
	}
	started := time.Now()
	build := model.Build{ID: newBuildID(), Namespace: ns, Function: cfg.Name, Runtime: cfg.Runtime, Requirements: reqs, StartedAt: started.UTC()}
	allowSdist := false
	if n, err := s.store.Namespace(ns); err == nil {
		allowSdist = n.AllowSdist
	}
	cacheKey := deps.CacheKey(cfg.Runtime, reqs, b.Index, allowSdist)
	var layer *model.DepLayer
	if l, ok := s.store.DepLayer(cacheKey); ok && s.d.Blobs.Has(l.SHA256) {
		layer, build.CacheHit = &l, true
		build.Log = fmt.Sprintf("nimbus: %s resolved to %s before: reusing layer %s\n", RequirementsFile, strings.Join(l.Packages, " "), l.SHA256[:12])
		if progress != nil {
			io.WriteString(progress, build.Log)
		}
	} else {
		log := &tailBuffer{max: model.MaxBuildLog}
		var w io.Writer = log
		if progress != nil {
			w = io.MultiWriter(log, progress)
		}
		built, berr := b.Build(ctx, deps.Request{Runtime: cfg.Runtime, Requirements: reqs, AllowSdist: allowSdist, Log: w})
		if berr == nil {
			layer, berr = s.storeLayer(ctx, built, cfg.Runtime, cacheKey)
		}
		build.Log = log.String()
		if berr != nil {
			err = berr
		}
	}
	build.Duration = model.Duration(time.Since(started))
	build.Status, build.Layer = model.BuildSucceeded, layer
	if err != nil {
		build.Status, build.Layer, build.Error = model.BuildFailed, nil, err.Error()
	}
	if _, rerr := fsm.Apply(ctx, s.d.Control, fsm.RecordBuild{Build: build}); rerr != nil {
		s.log.Warn("could not record a dependency build", "namespace", ns, "function", cfg.Name, "err", rerr)
	}
	if err != nil {
		s.log.Info("dependency build failed", "namespace", ns, "function", cfg.Name, "build", build.ID, "err", err)
		return nil, err
	}
	s.log.Info("dependency layer ready", "namespace", ns, "function", cfg.Name, "build", build.ID, "cache_hit", build.CacheHit, "sha256", layer.SHA256)
	return layer, nil
}

// storeLayer stores a built layer's zip (the builder checked it) and
// replicates it as code is.
func (s *Service) storeLayer(ctx context.Context, built deps.Layer, runtime, cacheKey string) (*model.DepLayer, error) {
	digest, err := s.d.Blobs.Put(built.Zip)
	if err != nil {
		return nil, err
	}
	if s.d.ReplicateBlob != nil {
		if err := s.d.ReplicateBlob(ctx, built.Zip); err != nil {
			return nil, err
		}
	}
	return &model.DepLayer{SHA256: digest, Size: int64(len(built.Zip)), Unpacked: built.Unpacked, Runtime: runtime,
		Packages: built.Packages, Key: built.Key, CacheKey: cacheKey}, nil
}

// Builds lists namespace ns's dependency builds, newest first (of
// function fn alone unless it is "").
func (s *Service) Builds(ns, fn string) []model.Build { return s.store.Builds(ns, fn) }

// Build is build id of namespace ns.
func (s *Service) Build(ns, id string) (model.Build, error) { return s.store.Build(ns, id) }

func newBuildID() string {
	var b [8]byte
	rand.Read(b[:])
	return "b-" + hex.EncodeToString(b[:])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t.cut {
		return "...\n" + string(t.buf)
	}
	return string(t.buf)
}
