package placement

// Pressure is what a worker's host says of its pressure stall
// information: the share of the last 10 s (in %, 0 to 100) in which some
// task waited for CPU or for memory ("some avg10" of /proc/pressure/cpu
// and /proc/pressure/memory). A worker whose kernel has no PSI sends 0,
// which cannot be told apart from no pressure.
type Pressure struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// pressured is a target that reports its host's pressure: remote workers
// do, in their heartbeats; the embedded worker of nimbus dev does not.
type pressured interface {
	Pressure() Pressure
}

// Pressure returns the pressure of each ready worker that reports it, by
// worker ID; workers that report none (the embedded one) are absent.
func (p *Placer) Pressure() map[string]Pressure {
	out := map[string]Pressure{}
	for _, t := range p.targets() {
		pt, ok := t.(pressured)
		if !ok {
			continue
		}
		if st := t.Status(); st.Healthy {
			out[st.ID] = pt.Pressure()
		}
	}
	return out
}

// Pressure is the pressure the worker's last heartbeat reported.
func (w *remote) Pressure() Pressure {
	hb, _ := w.snapshot()
	return Pressure{CPU: hb.GetCpuPressure(), Memory: hb.GetMemoryPressure()}
}
