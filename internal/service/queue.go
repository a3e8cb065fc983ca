package service

import (
	"context"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// DeadLetters lists namespace ns's dead letters, those of function fn
// only when fn is not "".
func (s *Service) DeadLetters(ns, fn string) []model.DeadLetter { return s.store.DeadLetters(ns, fn) }

// Redrive moves dead letters of namespace ns back to the queue: those
// with the given IDs, or with all every one (of function fn when fn is
// not ""). Only the namespace's own can be redriven: an ID of another
// namespace's is as unknown as one that does not exist. It returns how
// many moved; naming IDs none of which moved is ErrNotFound.
func (s *Service) Redrive(ctx context.Context, ns string, ids []string, all bool, fn string) (int, error) {
	var move []string
	if all {
		for _, dl := range s.store.DeadLetters(ns, fn) {
			move = append(move, dl.RequestID)
		}
	} else {
		if len(ids) == 0 {
			return 0, state.Errorf(state.ErrInvalid, `name the dead letters to redrive: {"ids": ["..."]}, or {"all": true}`)
		}
		own := map[string]bool{}
		for _, dl := range s.store.DeadLetters(ns, "") {
			own[dl.RequestID] = true
		}
		for _, id := range ids {
			if own[id] {
				move = append(move, id)
			}
		}
	}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.Redrive{IDs: move, Now: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	if !all && res.Moved == 0 {
		return 0, state.Errorf(state.ErrNotFound, "no dead letter with ID %s", strings.Join(ids, ", "))
	}
	if s.d.Woken != nil {
		s.d.Woken()
	}
	return res.Moved, nil
}
