package fsm

import (
	"nimbus/internal/model"
	"nimbus/internal/state"
)

func applyPutSource(s *state.Store, c PutSource) (PutSourceResult, error) {
	created, err := s.PutSource(c.Source, c.Now)
	return PutSourceResult{Created: created}, err
}

func applyDeleteSource(s *state.Store, c DeleteSource) (None, error) {
	return None{}, s.DeleteSource(model.QualifiedName(c.Namespace, c.Name))
}

func applyEnableSource(s *state.Store, c EnableSource) (None, error) {
	return None{}, s.SetSourceEnabled(model.QualifiedName(c.Namespace, c.Name), c.Enabled, c.Now)
}

func applySourceProgress(s *state.Store, c SourceProgress) (None, error) {
	s.RecordSourceProgress(c.Progress)
	return None{}, nil
}

func applyPutDeadLetters(s *state.Store, c PutDeadLetters) (None, error) {
	s.AddDeadLetters(c.Letters)
	return None{}, nil
}
