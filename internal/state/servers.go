package state

import (
	"sort"

	"nimbus/internal/model"
)

// PutServer records a server's addresses.
func (s *Store) PutServer(info model.ServerInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[info.ID] = &info
}

// RemoveServer forgets a server.
func (s *Store) RemoveServer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.servers, id)
}

// ServerInfos returns every recorded server, sorted by ID.
func (s *Store) ServerInfos() []model.ServerInfo {
	s.mu.RLock()
	out := make([]model.ServerInfo, 0, len(s.servers))
	for _, v := range s.servers {
		out = append(out, *v)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ServerInfo returns one server's addresses.
func (s *Store) ServerInfo(id string) (model.ServerInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.servers[id]
	if !ok {
		return model.ServerInfo{}, false
	}
	return *v, true
}

// PutSetting stores a cluster-wide setting; with ifAbsent it keeps an
// existing value.
func (s *Store) PutSetting(key, value string, ifAbsent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.settings[key]; ok && ifAbsent {
		return
	}
	s.settings[key] = value
}

// Setting returns a cluster-wide setting.
func (s *Store) Setting(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.settings[key]
	return v, ok
}
