package client

import (
	"context"
	"net/http"
)

// Scaling is the cluster's scaling signal (GET /v1/scaling): how many
// workers the load needs, and the load it was computed from.
type Scaling struct {
	Workers ScalingWorkers `json:"workers"`
	Load    ScalingLoad    `json:"load"`
}

// ScalingWorkers is the worker count: Current ready workers, the Desired
// count the load needs within [Min, Max] (Max 0: no bound), and the
// Reasons for it, one sentence each.
type ScalingWorkers struct {
	Current int      `json:"current"`
	Desired int      `json:"desired"`
	Min     int      `json:"min"`
	Max     int      `json:"max,omitempty"`
	Reasons []string `json:"reasons"`
}

// ScalingLoad is the load behind the signal: the ready workers' Slots
// and the invocations running or waiting there (InUse), the queued
// asynchronous events ready to run that no worker has taken yet
// (QueueDepth), the TargetUtilisation of slots the count aims at, and
// the highest CPU or memory pressure ("some avg10", %) a ready worker
// reports (nil when none reports it).
type ScalingLoad struct {
	Slots             int      `json:"slots"`
	InUse             int      `json:"in_use"`
	QueueDepth        int      `json:"queue_depth"`
	TargetUtilisation float64  `json:"target_utilisation"`
	PSISomeAvg10      *float64 `json:"psi_some_avg10"`
}

// Scaling returns the cluster's scaling signal (admin).
func (c *Client) Scaling(ctx context.Context) (Scaling, error) {
	var s Scaling
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/scaling", nil, nil, &s)
	return s, err
}
