package model

import "time"

// DefaultNamespace exists from the start and holds every object created
// without a namespace.
const DefaultNamespace = "default"

// NamespaceOf returns ns, or the default namespace for "".
func NamespaceOf(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// QualifiedName is a function's (or schedule's) identity across
// namespaces, "namespace/name", and its key in the store.
func QualifiedName(ns, name string) string { return NamespaceOf(ns) + "/" + name }

// Namespace is a tenant.
type Namespace struct {
	Name        string    `json:"name"`
	CreatedAt   time.Time `json:"created_at"`
	Concurrency int       `json:"concurrency,omitempty"` // 0: no limit
	ScanPolicy  string    `json:"scan_policy,omitempty"` // "": the server's
	// AllowSdist lets dependency builds build source distributions (in
	// the build's sandbox, reaching only the index); wheels only without.
	AllowSdist bool `json:"allow_sdist,omitempty"`
}

// Subscription sends a notification when an invocation of a function (or
// of any function) ends in one of the given conditions.
type Subscription struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	Function  string    `json:"function,omitempty"` // "" for every function
	On        []string  `json:"on"`                 // success, failure, timeout, dead_letter
	Webhook   string    `json:"webhook,omitempty"`
	Email     string    `json:"email,omitempty"`
	Created   time.Time `json:"created_at"`
	// Warning is an answer field (why notifications may not be
	// delivered); the service clears it before storing, so it is never
	// in stored data.
	Warning string `json:"warning,omitempty"`
}

// AuditEntry records one change made through the API.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace,omitempty"`
	KeyID     string    `json:"key_id"`
	Role      string    `json:"role"`
	Action    string    `json:"action"` // METHOD PATH
	Status    int       `json:"status"`
	Server    string    `json:"server,omitempty"`
}
