package service

import (
	"context"
	"encoding/json"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// TestEvents lists the saved test events of function of namespace ns,
// sorted by name; nil when it has none (or does not exist).
func (s *Service) TestEvents(ns, function string) []model.TestEvent {
	return s.store.TestEvents(model.QualifiedName(ns, function))
}

// TestEvent returns test event name of function of namespace ns
// (state.ErrNotFound when there is none).
func (s *Service) TestEvent(ns, function, name string) (model.TestEvent, error) {
	return s.store.TestEvent(model.QualifiedName(ns, function), name)
}

// PutTestEvent saves event under name for function of namespace ns,
// shared by everyone who may read the function, replacing what was saved
// under the name; by names who saved it (a key id or user:NAME). The
// function must exist (state.ErrNotFound); the name must follow
// Lambda's rule and the event be JSON of at most model.MaxTestEventBytes
// (state.ErrInvalid); a function keeps at most model.MaxTestEvents names
// (state.ErrConflict for one more, checked again by the FSM).
func (s *Service) PutTestEvent(ctx context.Context, ns, function, name string, event []byte, by string) (model.TestEvent, error) {
	if !model.ValidTestEventName(name) {
		return model.TestEvent{}, state.Errorf(state.ErrInvalid, "test event name %q is not %s", name, model.TestEventNameRule)
	}
	if len(event) > model.MaxTestEventBytes {
		return model.TestEvent{}, state.Errorf(state.ErrInvalid, "test event %q is %d bytes: at most %d KB", name, len(event), model.MaxTestEventBytes>>10)
	}
	if !json.Valid(event) {
		return model.TestEvent{}, state.Errorf(state.ErrInvalid, "test event %q is not valid JSON", name)
	}
	if _, err := s.store.Function(model.QualifiedName(ns, function)); err != nil {
		return model.TestEvent{}, err
	}
	e := model.TestEvent{Namespace: ns, Function: function, Name: name, Event: json.RawMessage(append([]byte(nil), event...)),
		UpdatedAt: time.Now().UTC(), UpdatedBy: by}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutTestEvent{Event: e})
	if err != nil {
		return model.TestEvent{}, err
	}
	return res.Event, nil
}

// DeleteTestEvent removes test event name of function of namespace ns
// (state.ErrNotFound when there is none).
func (s *Service) DeleteTestEvent(ctx context.Context, ns, function, name string) error {
	if _, err := s.TestEvent(ns, function, name); err != nil {
		return err
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteTestEvent{Namespace: ns, Function: function, Name: name})
	return err
}
