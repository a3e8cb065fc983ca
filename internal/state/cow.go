package state

// cowShards is how many shards a cowMap splits its keys into: a change
// copies one shard (about n/256 entries) and the array of shard pointers
// (2 KB), not the whole map.
const cowShards = 256

// cowMap is a map published to lock-free readers: a value never changes
// once it is published, and a change makes a new cowMap that shares
// every shard but the one the key hashes to. The zero value is an empty
// map. So the view (publishLocked) costs a deploy a small copy however
// many functions the store holds, where cloning the map cost O(n) per
// write and O(n²) to deploy n functions.
type cowMap[V any] struct {
	shards *[cowShards]map[string]V
	n      int
}

func cowShard(k string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(k); i++ {
		h ^= uint32(k[i])
		h *= 16777619
	}
	return int(h % cowShards)
}

// newCowMap copies src.
func newCowMap[V any](src map[string]V) cowMap[V] {
	var m cowMap[V]
	m.shards = new([cowShards]map[string]V)
	for k, v := range src {
		i := cowShard(k)
		if m.shards[i] == nil {
			m.shards[i] = map[string]V{}
		}
		m.shards[i][k] = v
	}
	m.n = len(src)
	return m
}

func (m cowMap[V]) get(k string) (V, bool) {
	var zero V
	if m.shards == nil {
		return zero, false
	}
	v, ok := m.shards[cowShard(k)][k]
	return v, ok
}

// with is m with k set to v.
func (m cowMap[V]) with(k string, v V) cowMap[V] {
	out := cowMap[V]{shards: new([cowShards]map[string]V), n: m.n}
	if m.shards != nil {
		*out.shards = *m.shards
	}
	i := cowShard(k)
	shard := make(map[string]V, len(out.shards[i])+1)
	for kk, vv := range out.shards[i] {
		shard[kk] = vv
	}
	if _, had := shard[k]; !had {
		out.n++
	}
	shard[k] = v
	out.shards[i] = shard
	return out
}

// without is m without k.
func (m cowMap[V]) without(k string) cowMap[V] {
	if _, ok := m.get(k); !ok {
		return m
	}
	out := cowMap[V]{shards: new([cowShards]map[string]V), n: m.n - 1}
	*out.shards = *m.shards
	i := cowShard(k)
	shard := make(map[string]V, len(out.shards[i]))
	for kk, vv := range out.shards[i] {
		if kk != k {
			shard[kk] = vv
		}
	}
	out.shards[i] = shard
	return out
}

func (m cowMap[V]) len() int { return m.n }

// each calls f with each of m's values, in no order.
func (m cowMap[V]) each(f func(V)) {
	if m.shards == nil {
		return
	}
	for _, shard := range m.shards {
		for _, v := range shard {
			f(v)
		}
	}
}

// keys returns m's keys, in no order.
func (m cowMap[V]) keys() []string {
	out := make([]string, 0, m.n)
	if m.shards == nil {
		return out
	}
	for _, shard := range m.shards {
		for k := range shard {
			out = append(out, k)
		}
	}
	return out
}
