package model

import "time"

// DepLayer is a dependency layer: the packages a function's
// requirements.txt resolved to, installed for one runtime, zipped and
// stored as a blob (SHA256, replicated like code). Functions whose
// requirements resolve alike share it.
type DepLayer struct {
	SHA256   string   `json:"sha256"`
	Size     int64    `json:"size"`     // of the zip
	Unpacked int64    `json:"unpacked"` // bytes of its files
	Runtime  string   `json:"runtime"`
	Packages []string `json:"packages,omitempty"` // NAME==VERSION, sorted
	// Key names the resolved set (the runtime and the fetched wheels'
	// names and digests); CacheKey the request (runtime, requirements,
	// index): a later build with this CacheKey reuses the layer.
	Key      string `json:"key"`
	CacheKey string `json:"cache_key"`
}

// Build statuses.
const (
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
)

// Build is one dependency build of a deploy: what it was asked, how it
// ended, how long it took and what pip printed (its tail).
type Build struct {
	ID           string    `json:"id"`
	Namespace    string    `json:"namespace"`
	Function     string    `json:"function"`
	Runtime      string    `json:"runtime"`
	Requirements []string  `json:"requirements,omitempty"`
	Status       string    `json:"status"`
	CacheHit     bool      `json:"cache_hit,omitempty"` // the layer was built before: nothing fetched
	Layer        *DepLayer `json:"layer,omitempty"`     // when it succeeded
	Error        string    `json:"error,omitempty"`     // when it failed: pip's message
	StartedAt    time.Time `json:"started_at"`
	Duration     Duration  `json:"duration"`
	Log          string    `json:"log,omitempty"` // the last MaxBuildLog bytes
}

// MaxBuildLog bounds the log a build keeps; MaxBuilds the builds kept
// per namespace (the oldest go first).
const (
	MaxBuildLog = 32 << 10
	MaxBuilds   = 200
)

// Layer is one version of a published layer: a zip of files a
// function may mount (Python packages under python/, as Lambda's), for
// the runtimes it names (any, if none). Versions are numbered from 1
// per name and never change.
type Layer struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Version     int64     `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`     // of the zip
	Unpacked    int64     `json:"unpacked"` // bytes of its files
	Runtimes    []string  `json:"runtimes,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// LayerRef is a layer version a function mounts, as resolved at deploy.
type LayerRef struct {
	Name     string `json:"name"`
	Version  int64  `json:"version"`
	SHA256   string `json:"sha256"`
	Unpacked int64  `json:"unpacked"`
}

// Layer limits: a function mounts at most MaxLayers; its code, layers
// and dependency layer unzip to at most MaxUnpacked bytes together.
const (
	MaxLayers   = 5
	MaxUnpacked = 250 << 20
)
