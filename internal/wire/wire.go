// Package wire converts between the stored model (internal/model) and the
// public API's wire types (pkg/client): the one place the two meet. The
// gateway converts what it decodes from a request to model types before
// calling the service and what the service returns to wire types before
// encoding it; the notifier converts the records its payloads carry.
//
// Most pairs have the same fields in the same order and convert with a Go
// conversion, which ignores JSON tags: renaming a field's JSON name on
// one side leaves the other as it is, while adding a field to one side
// only fails to compile here, so that whoever adds it decides whether it
// is stored, shown, or both. Conversions share maps, slices and pointers
// with their argument: objects read from the store are never mutated.
package wire

import (
	"nimbus/internal/backup"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// List converts each element of a slice; nil stays nil.
func List[From, To any](in []From, conv func(From) To) []To {
	if in == nil {
		return nil
	}
	out := make([]To, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}

// Function is a stored function as the API shows it.
func Function(m model.Function) client.Function {
	return client.Function{
		FunctionConfig: FunctionConfig(m.FunctionConfig),
		Namespace:      m.Namespace, Revision: m.Revision,
		CodeSHA256: m.CodeSHA256, CodeSize: m.CodeSize,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Scan: ScanReport(m.Scan), Deps: DepLayer(m.Deps), LayerRefs: List(m.LayerRefs, LayerRef),
		Version: model.VersionString(m.Version),
	}
}

// Alias is an alias as the API shows it.
func Alias(m model.Alias) client.Alias {
	a := client.Alias{Namespace: m.Namespace, Function: m.Function, Name: m.Name, Version: model.VersionString(m.Version),
		Description: m.Description, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if m.Routing != nil {
		a.Routing = &client.AliasRouting{Version: model.VersionString(m.Routing.Version), Weight: m.Routing.Weight}
	}
	return a
}

// DepLayer is a dependency layer as the API shows it; nil stays nil.
func DepLayer(m *model.DepLayer) *client.DepLayer {
	if m == nil {
		return nil
	}
	return &client.DepLayer{SHA256: m.SHA256, Size: m.Size, Unpacked: m.Unpacked, Runtime: m.Runtime, Packages: m.Packages}
}

// Layer is a published layer version as the API shows it.
func Layer(m model.Layer) client.Layer {
	return client.Layer{Namespace: m.Namespace, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
		Unpacked: m.Unpacked, Runtimes: m.Runtimes, Description: m.Description, CreatedAt: m.CreatedAt}
}

// LayerRef is a mounted layer version as the API shows it.
func LayerRef(m model.LayerRef) client.LayerRef {
	return client.LayerRef{Name: m.Name, Version: m.Version, SHA256: m.SHA256, Unpacked: m.Unpacked}
}

// Build is a dependency build as the API shows it.
func Build(m model.Build) client.Build {
	return client.Build{ID: m.ID, Namespace: m.Namespace, Function: m.Function, Runtime: m.Runtime, Requirements: m.Requirements,
		Status: m.Status, CacheHit: m.CacheHit, Layer: DepLayer(m.Layer), Error: m.Error, StartedAt: m.StartedAt,
		Duration: client.Duration(m.Duration), Log: m.Log}
}

// FunctionConfig is a stored configuration as the API shows it.
func FunctionConfig(m model.FunctionConfig) client.FunctionConfig {
	return client.FunctionConfig{
		Name: m.Name, Runtime: m.Runtime, Handler: m.Handler, MemoryMB: m.MemoryMB,
		Timeout: client.Duration(m.Timeout), Env: m.Env, EphemeralMB: m.EphemeralMB,
		Description: m.Description, Retries: m.Retries,
		RetryDelay: client.Duration(m.RetryDelay), MaxEventAge: client.Duration(m.MaxEventAge),
		Destinations:        (*client.Destinations)(m.Destinations),
		ReservedConcurrency: m.ReservedConcurrency, Provisioned: m.Provisioned, Source: m.Source, Layers: m.Layers,
	}
}

// ModelFunctionConfig is a configuration from a request, to be stored.
func ModelFunctionConfig(c client.FunctionConfig) model.FunctionConfig {
	return model.FunctionConfig{
		Name: c.Name, Runtime: c.Runtime, Handler: c.Handler, MemoryMB: c.MemoryMB,
		Timeout: model.Duration(c.Timeout), Env: c.Env, EphemeralMB: c.EphemeralMB,
		Description: c.Description, Retries: c.Retries,
		RetryDelay: model.Duration(c.RetryDelay), MaxEventAge: model.Duration(c.MaxEventAge),
		Destinations:        (*model.Destinations)(c.Destinations),
		ReservedConcurrency: c.ReservedConcurrency, Provisioned: c.Provisioned, Source: c.Source, Layers: c.Layers,
	}
}

// ScanReport is a stored scan report as the API shows it; nil stays nil.
func ScanReport(m *model.ScanReport) *client.ScanReport {
	if m == nil {
		return nil
	}
	return &client.ScanReport{Scanner: m.Scanner, Note: m.Note,
		Findings: List(m.Findings, func(f model.Finding) client.Finding { return client.Finding(f) })}
}

// Dependents are what names a function, as the API shows them.
func Dependents(m model.FunctionDependents) client.FunctionDependents {
	return client.FunctionDependents(m)
}

// Invocation is a stored record as the API (and a notification) shows it.
func Invocation(m model.Invocation) client.Invocation { return client.Invocation(m) }

// LogEntry is a stored log as the API shows it.
func LogEntry(m model.LogEntry) client.LogEntry { return client.LogEntry(m) }

// DeadLetter is a stored dead letter as the API shows it.
func DeadLetter(m model.DeadLetter) client.DeadLetter { return client.DeadLetter(m) }

// Schedule is a stored schedule as the API shows it.
func Schedule(m model.Schedule) client.Schedule { return client.Schedule(m) }

// ModelSchedule is a schedule from a request, to be stored.
func ModelSchedule(c client.Schedule) model.Schedule { return model.Schedule(c) }

// Namespace is a stored namespace as the API shows it.
func Namespace(m model.Namespace) client.Namespace { return client.Namespace(m) }

// ModelNamespace is a namespace from a request, to be stored.
func ModelNamespace(c client.Namespace) model.Namespace { return model.Namespace(c) }

// Subscription is a stored subscription as the API shows it.
func Subscription(m model.Subscription) client.Subscription { return client.Subscription(m) }

// ModelSubscription is a subscription from a request, to be stored.
func ModelSubscription(c client.Subscription) model.Subscription { return model.Subscription(c) }

// AuditEntry is a stored audit entry as the API shows it.
func AuditEntry(m model.AuditEntry) client.AuditEntry { return client.AuditEntry(m) }

// Key is a stored API key as the API shows it: never its hash (the secret
// is set only in the answer that creates the key).
func Key(m model.Key) client.Key {
	return client.Key{ID: m.ID, Role: m.Role, Namespace: m.Namespace, Note: m.Note,
		CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt, RateLimit: m.RateLimit}
}

// User is a stored user as the API shows it: never the password's hash.
func User(m model.User) client.User {
	return client.User{Name: m.Name, Role: m.Role, Namespace: m.Namespace, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// Source is a stored event source mapping as the API shows it: its
// password never, its URL with **** in the password's place.
func Source(m model.Source) client.Source {
	return client.Source{
		Name: m.Name, Namespace: m.Namespace, Function: m.Function, Type: m.Type,
		URL: m.ShownURL(), Queue: m.Queue, Topic: m.Topic, Subject: m.Subject, Stream: m.Stream,
		BatchSize: m.BatchSize, BatchWindow: client.Duration(m.BatchWindow), Concurrency: m.Concurrency,
		StartFrom: m.StartFrom, Format: m.Format, Retries: m.Retries, RetryDelay: client.Duration(m.RetryDelay),
		DeadLetter: m.DeadLetter, Disabled: m.Disabled, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Progress: client.SourceProgress(m.Progress),
	}
}

// ModelSource is an event source mapping from a request, to be stored
// (its progress and times are the store's).
func ModelSource(c client.Source) model.Source {
	return model.Source{
		Name: c.Name, Function: c.Function, Type: c.Type,
		URL: c.URL, Password: c.Password, Queue: c.Queue, Topic: c.Topic, Subject: c.Subject, Stream: c.Stream,
		BatchSize: c.BatchSize, BatchWindow: model.Duration(c.BatchWindow), Concurrency: c.Concurrency,
		StartFrom: c.StartFrom, Format: c.Format, Retries: c.Retries, RetryDelay: model.Duration(c.RetryDelay),
		DeadLetter: c.DeadLetter, Disabled: c.Disabled,
	}
}

// Topic is a stored topic as the API shows it.
func Topic(m model.Topic) client.Topic {
	return client.Topic{Name: m.Name, Namespace: m.Namespace, Description: m.Description,
		Subscribers: List(m.Subscribers, TopicSubscriber), CreatedAt: m.CreatedAt,
		Published: m.Published, LastMessage: m.LastMessage, LastPublish: m.LastPublish}
}

// ModelTopic is a topic from a request, to be stored: its name and
// description (subscribers and counts change through their own requests).
func ModelTopic(c client.Topic) model.Topic {
	return model.Topic{Name: c.Name, Namespace: c.Namespace, Description: c.Description}
}

// TopicSubscriber is a stored subscriber as the API shows it.
func TopicSubscriber(m model.TopicSubscriber) client.TopicSubscriber {
	return client.TopicSubscriber{Function: m.Function, CreatedAt: m.CreatedAt,
		Filters: List(m.Filters, func(f model.TopicFilter) client.TopicFilter { return client.TopicFilter(f) })}
}

// ModelTopicSubscriber is a subscriber from a request, to be stored.
func ModelTopicSubscriber(c client.TopicSubscriber) model.TopicSubscriber {
	return model.TopicSubscriber{Function: c.Function, CreatedAt: c.CreatedAt,
		Filters: List(c.Filters, func(f client.TopicFilter) model.TopicFilter { return model.TopicFilter(f) })}
}

// FunctionURL is a stored function URL as the API shows it, at endpoint
// (the URL on the server that answers).
func FunctionURL(m model.FunctionURL, endpoint string) client.FunctionURL {
	return client.FunctionURL{Namespace: m.Namespace, Function: m.Function, Auth: m.Auth,
		CORS: (*client.CORS)(m.CORS), RateLimit: m.RateLimit, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, URL: endpoint}
}

// ModelFunctionURL is a function URL from a request, to be stored (its
// URL field, an answer's, is dropped).
func ModelFunctionURL(c client.FunctionURL) model.FunctionURL {
	return model.FunctionURL{Namespace: c.Namespace, Function: c.Function, Auth: c.Auth,
		CORS: (*model.CORS)(c.CORS), RateLimit: c.RateLimit, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// TestEvent is a saved test event as the API shows it.
func TestEvent(m model.TestEvent) client.TestEvent {
	return client.TestEvent{Namespace: m.Namespace, Function: m.Function, Name: m.Name, Event: m.Event,
		UpdatedAt: m.UpdatedAt, UpdatedBy: m.UpdatedBy}
}

// MetricPoint is a point of a metric series as the API shows it.
func MetricPoint(m model.MetricPoint) client.MetricPoint {
	return client.MetricPoint(m)
}

// UsageRow is a usage row as the API shows it.
func UsageRow(m model.UsageRow) client.UsageRow { return client.UsageRow(m) }

// CostReport is a month's cost as the API shows it.
func CostReport(m model.CostReport) client.CostReport {
	return client.CostReport{Month: m.Month, From: m.From, To: m.To, Complete: m.Complete,
		Namespaces: List(m.Namespaces, func(c model.NamespaceCost) client.NamespaceCost {
			return client.NamespaceCost{Namespace: c.Namespace, Prices: PriceTable(c.Prices), Requests: c.Requests,
				GBSeconds: c.GBSeconds, BilledRequests: c.BilledRequests, BilledGBSeconds: c.BilledGBSeconds,
				ProvisionedGBSeconds: c.ProvisionedGBSeconds, RequestCost: c.RequestCost, ComputeCost: c.ComputeCost,
				ProvisionedCost: c.ProvisionedCost, Total: c.Total, Forecast: client.Forecast(c.Forecast)}
		})}
}

// Budget is a budget with its month's spend as the API shows it.
func Budget(m model.BudgetStatus) client.Budget {
	b := m.Budget
	return client.Budget{Namespace: b.Namespace, Monthly: b.Monthly, Notify: b.Notify, HardLimit: b.HardLimit, UpdatedAt: b.UpdatedAt,
		Month: b.Month, Alerts: b.Alerts, Exceeded: b.Exceeded, Currency: m.Currency, Spent: m.Spent, Forecast: m.Forecast}
}

// RuntimeOffer is a runtime and its workers as the API shows them.
func RuntimeOffer(m model.RuntimeOffer) client.RuntimeOffer { return client.RuntimeOffer(m) }

// PriceTable is a price table as the API shows it.
func PriceTable(m model.PriceTable) client.PriceTable { return client.PriceTable(m) }

// ModelPriceTable is a price table from a request.
func ModelPriceTable(c client.PriceTable) model.PriceTable { return model.PriceTable(c) }

// BackupMeta is a backup's description as the API shows it.
func BackupMeta(m backup.Meta) client.BackupMeta {
	out := client.BackupMeta{Format: m.Format, CreatedAt: m.CreatedAt, Server: m.Server, Index: m.Index, Term: m.Term,
		Counts: m.Counts, State: client.BackupEntry(m.State)}
	for _, b := range m.Blobs {
		out.Blobs = append(out.Blobs, client.BackupEntry(b))
	}
	return out
}
