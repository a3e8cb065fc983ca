package service

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Tags are a function's key-value labels (the Lambda API's TagResource,
// ListTags, UntagResource). They are kept as a cluster setting per
// function (fsm.PutSetting: no command of their own), stamped with the
// function's creation time: tags left behind by a function that was
// removed another way are not a new function's of the same name.
//
// A change reads the tags, changes them and writes them back; changes
// through one server are serialised (tagsMu), but two servers changing
// one function's tags at the same instant may lose one of the changes.

// Limits of tags, as Lambda's.
const (
	MaxTags        = 50
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
)

// storedTags is a function's tags as their setting holds them.
type storedTags struct {
	Created time.Time         `json:"created"` // the function's CreatedAt
	Tags    map[string]string `json:"tags"`
}

func tagsKey(ns, name string) string { return "function-tags/" + model.QualifiedName(ns, name) }

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
	return s.tagsOf(f), nil
}

func (s *Service) tagsOf(f model.Function) map[string]string {
	tags := map[string]string{}
	v, ok := s.store.Setting(tagsKey(f.Namespace, f.Name))
	if !ok || v == "" {
		return tags
	}
	var st storedTags
	if json.Unmarshal([]byte(v), &st) != nil || !st.Created.Equal(f.CreatedAt) {
		return tags
	}
	maps.Copy(tags, st.Tags)
	return tags
}

// TagFunction adds tags to function name's (replacing the values of keys
// it has).
func (s *Service) TagFunction(ctx context.Context, ns, name string, tags map[string]string) error {
	if err := s.CheckTags(tags); err != nil {
		return err
	}
	return s.changeTags(ctx, ns, name, func(t map[string]string) { maps.Copy(t, tags) })
}

// UntagFunction removes the tags of keys from function name's.
func (s *Service) UntagFunction(ctx context.Context, ns, name string, keys []string) error {
	return s.changeTags(ctx, ns, name, func(t map[string]string) {
		for _, k := range keys {
			delete(t, k)
		}
	})
}

func (s *Service) changeTags(ctx context.Context, ns, name string, change func(map[string]string)) error {
	s.tagsMu.Lock()
	defer s.tagsMu.Unlock()
	f, err := s.store.Function(model.QualifiedName(ns, name))
	if err != nil {
		return err
	}
	tags := s.tagsOf(f)
	change(tags)
	if len(tags) > MaxTags {
		return state.Errorf(state.ErrInvalid, "the function would have %d tags: at most %d", len(tags), MaxTags)
	}
	b, err := json.Marshal(storedTags{Created: f.CreatedAt, Tags: tags})
	if err != nil {
		return err
	}
	_, err = fsm.Apply(ctx, s.d.Control, fsm.PutSetting{Key: tagsKey(ns, name), Value: string(b)})
	return err
}
