package service

import (
	"context"
	"maps"
	"strings"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Tags are a function's key-value labels (the Lambda API's TagResource,
// ListTags, UntagResource), stored on the function (model.Function.Tags)
// and changed by one command (fsm.TagFunction) that reads and writes
// them in the same apply: two changes through two servers both land.

// Limits of tags, as Lambda's.
const (
	MaxTags        = model.MaxTags
	MaxTagKeyLen   = model.MaxTagKeyLen
	MaxTagValueLen = model.MaxTagValueLen
)

// CheckTags refuses tags Lambda would refuse: too many, keys empty, too
// long or starting with "aws:", values too long.
func (s *Service) CheckTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return state.Errorf(state.ErrInvalid, "%d tags: a function has at most %d", len(tags), MaxTags)
	}
	for k, v := range tags {
		switch {
		case k == "" || len(k) > MaxTagKeyLen:
			return state.Errorf(state.ErrInvalid, "tag key %q: 1-%d characters", k, MaxTagKeyLen)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return state.Errorf(state.ErrInvalid, "tag key %q: the prefix aws: is reserved", k)
		case len(v) > MaxTagValueLen:
			return state.Errorf(state.ErrInvalid, "tag %q: the value is %d characters; at most %d", k, len(v), MaxTagValueLen)
		}
	}
	return nil
}

// FunctionTags returns function name's tags (empty, not nil, when it has
// none); ErrNotFound for a function that does not exist.
func (s *Service) FunctionTags(ns, name string) (map[string]string, error) {
	f, err := s.store.Function(model.QualifiedName(ns, name))
	if err != nil {
		return nil, err
	}
	tags := maps.Clone(f.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return tags, nil
}

// TagFunction adds tags to function name's (replacing the values of keys
// it has).
func (s *Service) TagFunction(ctx context.Context, ns, name string, tags map[string]string) error {
	if err := s.CheckTags(tags); err != nil {
		return err
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.TagFunction{Namespace: ns, Name: name, Set: tags})
	return err
}

// UntagFunction removes the tags of keys from function name's.
func (s *Service) UntagFunction(ctx context.Context, ns, name string, keys []string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.TagFunction{Namespace: ns, Name: name, Remove: keys})
	return err
}
