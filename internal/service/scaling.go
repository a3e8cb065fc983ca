package service

import (
	"fmt"
	"math"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/pkg/client"
)

// Scaling defaults (ScalingPolicy's zero values).
const (
	DefaultTargetUtilisation = 0.7
	DefaultPressureHigh      = 50.0
)

// ScalingPolicy shapes the worker count the load asks for (GET
// /v1/scaling, nimbus_scaling_desired_workers).
type ScalingPolicy struct {
	// MinWorkers is the fewest workers ever asked for (at least 1).
	MinWorkers int
	// MaxWorkers is the most (0: no bound).
	MaxWorkers int
	// TargetUtilisation is the share of the slots (0 < t ≤ 1) the load
	// should fill: 0.7 asks for workers enough that the load fills 70%
	// of their slots. 0 for DefaultTargetUtilisation.
	TargetUtilisation float64
	// PressureHigh is the CPU or memory pressure (PSI "some avg10", %)
	// of a ready worker at or above which one more worker than now is
	// asked for, whatever the slots say. 0 for DefaultPressureHigh.
	PressureHigh float64
}

func (p ScalingPolicy) withDefaults() ScalingPolicy {
	p.MinWorkers = max(p.MinWorkers, 1)
	if p.MaxWorkers > 0 {
		p.MaxWorkers = max(p.MaxWorkers, p.MinWorkers)
	}
	if p.TargetUtilisation <= 0 || p.TargetUtilisation > 1 {
		p.TargetUtilisation = DefaultTargetUtilisation
	}
	if p.PressureHigh <= 0 {
		p.PressureHigh = DefaultPressureHigh
	}
	return p
}

// ScalingInput is the load the scaling signal is computed from.
type ScalingInput struct {
	// Workers is the cluster view's workers (dead and draining ones
	// among them, which count for nothing).
	Workers []client.Worker
	// Pressure is the ready workers' pressure, by ID, for those that
	// report it.
	Pressure map[string]placement.Pressure
	// QueueDepth is the queued asynchronous events ready to run that no
	// worker has taken (not leased, not waiting for a retry's delay).
	QueueDepth int
}

// DesiredWorkers computes the scaling signal: the workers the load needs
// so that the invocations running or waiting at the ready workers, plus
// the queued events ready to run, fill TargetUtilisation of their slots
// (at the ready workers' mean slots per worker); one more than now when
// a ready worker's pressure is at PressureHigh or above; within
// [MinWorkers, MaxWorkers]. It is a pure function of its arguments.
func DesiredWorkers(in ScalingInput, p ScalingPolicy) client.Scaling {
	p = p.withDefaults()
	var (
		ready, slots, inUse int
		knownSlots, known   int // every worker's, for a cluster with none ready
	)
	for _, w := range in.Workers {
		if w.Slots > 0 {
			knownSlots += w.Slots
			known++
		}
		if !w.Healthy {
			continue
		}
		ready++
		slots += w.Slots
		inUse += w.InUse
	}
	out := client.Scaling{
		Workers: client.ScalingWorkers{Current: ready, Min: p.MinWorkers, Max: p.MaxWorkers, Reasons: []string{}},
		Load:    client.ScalingLoad{Slots: slots, InUse: inUse, QueueDepth: in.QueueDepth, TargetUtilisation: p.TargetUtilisation},
	}
	reason := func(format string, args ...any) {
		out.Workers.Reasons = append(out.Workers.Reasons, fmt.Sprintf(format, args...))
	}
	demand := inUse + in.QueueDepth
	var perWorker float64
	switch {
	case ready > 0 && slots > 0:
		perWorker = float64(slots) / float64(ready)
	case known > 0:
		perWorker = float64(knownSlots) / float64(known)
		reason("no worker is ready: slots per worker taken from the %d that are draining or dead", known)
	}
	desired := 0
	if perWorker > 0 {
		// A hair below each integer counts as it: 7 / (10 × 0.7) is 1.
		desired = int(math.Ceil(float64(demand)/(perWorker*p.TargetUtilisation) - 1e-9))
		reason("%d invocations running or waiting at the ready workers and %d queued events ready to run need %d workers of %s slots at %s%% utilisation",
			inUse, in.QueueDepth, desired, trimFloat(perWorker), trimFloat(p.TargetUtilisation*100))
	} else {
		reason("no worker has reported its slots: the load cannot be turned into workers")
		if demand > 0 {
			desired = 1
		}
	}

	if psi, ok := highestPressure(in); ok {
		out.Load.PSISomeAvg10 = &psi
		if psi >= p.PressureHigh && desired <= ready {
			desired = ready + 1
			reason("a ready worker's CPU or memory pressure (PSI some avg10) is %s%%, at or above %s%%: one more worker than the %d ready",
				trimFloat(psi), trimFloat(p.PressureHigh), ready)
		}
	} else {
		reason("no ready worker reports pressure stall information (PSI): the count rests on slots and the queue alone")
	}

	if desired < p.MinWorkers {
		reason("raised from %d to the minimum of %d", desired, p.MinWorkers)
		desired = p.MinWorkers
	}
	if p.MaxWorkers > 0 && desired > p.MaxWorkers {
		reason("capped from %d at the maximum of %d", desired, p.MaxWorkers)
		desired = p.MaxWorkers
	}
	out.Workers.Desired = desired
	return out
}

// highestPressure is the highest CPU or memory pressure of the ready
// workers that report it, and whether any does.
func highestPressure(in ScalingInput) (float64, bool) {
	var (
		high     float64
		reported bool
	)
	for _, w := range in.Workers {
		pr, ok := in.Pressure[w.ID]
		if !w.Healthy || !ok {
			continue
		}
		high, reported = max(high, pr.CPU, pr.Memory), true
	}
	return high, reported
}

// trimFloat formats f with at most two decimals, without trailing zeros.
func trimFloat(f float64) string {
	return fmt.Sprint(math.Round(f*100) / 100)
}

// ScalingLoads is what the scaling signal reads of placement: the
// cluster view's workers and the pressure they report.
type ScalingLoads interface {
	Workers() []client.Worker
	Pressure() map[string]placement.Pressure
}

var _ ScalingLoads = (*placement.Placer)(nil)

// Scaling returns the scaling signal as of now: this server's view of
// the workers (each server sees every worker's heartbeats) and the
// replicated queue. Without Deps.Loads it counts no worker.
func (s *Service) Scaling(now time.Time) client.Scaling {
	var in ScalingInput
	if s.d.Loads != nil {
		in.Workers, in.Pressure = s.d.Loads.Workers(), s.d.Loads.Pressure()
	}
	in.QueueDepth = queueDepth(s.store.QueueItems(), now)
	return DesiredWorkers(in, s.d.Scaling)
}

// queueDepth counts the items ready to run at now that no worker has
// taken: not leased, and not waiting for a retry's delay.
func queueDepth(items []*model.QueueItem, now time.Time) int {
	n := 0
	for _, q := range items {
		if !q.Leased(now) && !now.Before(q.NotBefore) {
			n++
		}
	}
	return n
}
