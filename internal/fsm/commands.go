// Package fsm owns the Raft commands and the finite state machine that
// applies them to the state store.
//
// Contracts, as in Nomad:
//   - Command types are append-only: a number is never reused or renumbered.
//   - Apply is deterministic: timestamps and IDs arrive inside the command;
//     nothing in Apply reads the clock or a random source.
//   - Objects read from the store are never mutated in place.
package fsm

import (
	"encoding/json"
	"time"

	"nimbus/internal/model"
)

// CommandType identifies a command. Append only.
type CommandType uint8

const (
	UpsertFunctionType     CommandType = 1
	DeleteFunctionType     CommandType = 2
	RecordInvocationsType  CommandType = 3
	PutKeyType             CommandType = 4
	PutServerType          CommandType = 5
	EnqueueType            CommandType = 6
	LeaseType              CommandType = 7
	FinishType             CommandType = 8
	RedriveType            CommandType = 9
	PutScheduleType        CommandType = 10
	DeleteScheduleType     CommandType = 11
	EnableScheduleType     CommandType = 12
	FireScheduleType       CommandType = 13
	PutSettingType         CommandType = 14
	PutSubscriptionType    CommandType = 15
	DeleteSubscriptionType CommandType = 16
	FireSchedulesType      CommandType = 17
	DeleteKeyType          CommandType = 18
	AuditType              CommandType = 19
	PutUserType            CommandType = 20
	DeleteUserType         CommandType = 21
	PutSessionType         CommandType = 22
	DeleteSessionType      CommandType = 23
	PutNamespaceType       CommandType = 24
	DeleteNamespaceType    CommandType = 25
	RemoveFunctionType     CommandType = 26
	// Reserved for issue 18's triggers, each defined with its command.
	PutFunctionURLType    CommandType = 27
	DeleteFunctionURLType CommandType = 28
	PutTopicType          CommandType = 29
	DeleteTopicType       CommandType = 30
	SubscribeTopicType    CommandType = 31
	UnsubscribeTopicType  CommandType = 32
	PublishType           CommandType = 33
	PutSourceType         CommandType = 34
	DeleteSourceType      CommandType = 35
	EnableSourceType      CommandType = 36
	SourceProgressType    CommandType = 37
	PutDeadLettersType    CommandType = 38
	PutTestEventType      CommandType = 39
	DeleteTestEventType   CommandType = 40
	PutPricesType         CommandType = 41
	PutBudgetType         CommandType = 42
	DeleteBudgetType      CommandType = 43
	BudgetCheckType       CommandType = 44
	RecordBuildType       CommandType = 45
	PublishLayerType      CommandType = 46
	DeleteLayerType       CommandType = 47
	PublishVersionType    CommandType = 48
	DeleteVersionType     CommandType = 49
	PutAliasType          CommandType = 50
	DeleteAliasType       CommandType = 51
	TagFunctionType       CommandType = 52
)

// PutUser creates a user (Create: refused, as Conflict, if the name is
// taken) or replaces one that exists (a new role or password), which
// ends the user's sessions but Keep's. The password is in it only as its
// argon2id hash.
type PutUser struct {
	User   model.User `json:"user"`
	Create bool       `json:"create"`
	Keep   string     `json:"keep,omitempty"` // session ID to keep
}

// PutUserResult says whether the user was stored; Conflict when Create
// found the name taken.
type PutUserResult struct {
	Conflict bool `json:"conflict"`
}

// DeleteUser removes a user and ends their sessions.
type DeleteUser struct {
	Name string `json:"name"`
}

// PutSession starts a session (its secret only as a hash) and drops those
// expired as of Now.
type PutSession struct {
	Session model.Session `json:"session"`
	Now     time.Time     `json:"now"`
}

// DeleteSession ends a session.
type DeleteSession struct {
	ID string `json:"id"`
}

// PutNamespace creates or changes a namespace.
type PutNamespace struct {
	Namespace model.Namespace `json:"namespace"`
}

// PutNamespaceResult says whether the namespace is new.
type PutNamespaceResult struct {
	Created bool `json:"created"`
}

// DeleteNamespace removes an empty namespace.
type DeleteNamespace struct {
	Name string `json:"name"`
}

// PutSubscription stores a notification subscription.
type PutSubscription struct {
	Subscription model.Subscription `json:"subscription"`
}

// DeleteSubscription removes one.
type DeleteSubscription struct {
	ID string `json:"id"`
}

// PutSetting stores a cluster-wide setting (such as the webhook signing
// secret); with IfAbsent it keeps a value already there.
type PutSetting struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	IfAbsent bool   `json:"if_absent"`
}

// UpsertFunction creates a function or adds a revision to it.
type UpsertFunction struct {
	Function model.Function `json:"function"`
	Now      time.Time      `json:"now"`
}

// UpsertFunctionResult is what applying UpsertFunction returns.
type UpsertFunctionResult struct {
	Function model.Function
	Created  bool
}

// DeleteFunction removes a function.
type DeleteFunction struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Name      string `json:"name"`
}

// RemoveFunction removes a function, unless schedules, subscriptions,
// other functions' destinations or topic subscriptions name it; with Force it removes those too,
// in the same entry. (DeleteFunction, which it replaces in the gateway,
// removes the function alone, whatever names it.)
type RemoveFunction struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Name      string `json:"name"`
	Force     bool   `json:"force,omitempty"`
}

// RemoveFunctionResult is what applying RemoveFunction returns: whether
// the function was removed, and what names it (removed with it when it
// was, the reason it was not otherwise).
type RemoveFunctionResult struct {
	Deleted    bool                     `json:"deleted"`
	Dependents model.FunctionDependents `json:"dependents"`
}

// RecordInvocations stores a batch of invocation records and applies
// retention as of Now; it counts the records' invocations and the
// Throttles in the metric history, whose window Now moves (see
// state.MetricsRetention).
type RecordInvocations struct {
	Records   []model.Invocation    `json:"records"`
	Throttles []model.ThrottleCount `json:"throttles,omitempty"`
	Retention model.Retention       `json:"retention"`
	Now       time.Time             `json:"now"`
}

// RecordInvocationsResult lists the records that retention removed, so
// the caller can drop their logs too.
type RecordInvocationsResult struct {
	Removed []string
}

// PutKey stores an API key (its hash only).
type PutKey struct {
	Key model.Key `json:"key"`
}

// Audit appends entries to the audit log.
type Audit struct {
	Entries []model.AuditEntry `json:"entries"`
}

// DeleteKey revokes an API key.
type DeleteKey struct {
	ID string `json:"id"`
}

// PutServer records a control-plane member's addresses.
type PutServer struct {
	Server model.ServerInfo `json:"server"`
}

// Enqueue queues asynchronous events (a batch: many per Raft entry).
type Enqueue struct {
	Items []model.QueueItem `json:"items"`
}

// EnqueueResult says how many events were new.
type EnqueueResult struct {
	Queued int `json:"queued"`
}

// LeaseRequest asks to lease one queued event until Until.
type LeaseRequest struct {
	RequestID string    `json:"request_id"`
	Until     time.Time `json:"until"`
}

// Lease leases queued events to the dispatcher.
type Lease struct {
	Leases []LeaseRequest `json:"leases"`
	Now    time.Time      `json:"now"`
}

// LeaseResult gives each granted lease's epoch (absent: refused).
type LeaseResult struct {
	Epochs map[string]uint64 `json:"epochs"`
}

// Outcome kinds.
const (
	OutcomeComplete   = "complete"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

// Outcome ends a lease: the event completed (Record is its final record),
// goes back to the queue until NotBefore, or becomes a dead letter.
// Enqueue lists events to queue with it (function destinations), so an
// outcome and what it triggers commit together.
type Outcome struct {
	RequestID string            `json:"request_id"`
	Epoch     uint64            `json:"epoch"` // 0 for any (an expired lease, or an event too old)
	Kind      string            `json:"kind"`
	Record    model.Invocation  `json:"record,omitzero"` // complete: the record; retry, dead letter: the attempt's, if one ran
	NotBefore time.Time         `json:"not_before,omitzero"`
	Reason    string            `json:"reason,omitempty"`
	Refund    bool              `json:"refund,omitempty"` // retry: the event never ran
	LastError string            `json:"last_error,omitempty"`
	Enqueue   []model.QueueItem `json:"enqueue,omitempty"`
}

// Finish applies a batch of outcomes.
type Finish struct {
	Outcomes []Outcome `json:"outcomes"`
	Now      time.Time `json:"now"`
}

// FinishResult lists the outcomes refused, with why (a stale epoch: the
// result came after its lease expired and the event moved on).
type FinishResult struct {
	Refused map[string]string `json:"refused,omitempty"`
}

// Redrive moves dead letters back to the queue.
type Redrive struct {
	IDs []string  `json:"ids"`
	Now time.Time `json:"now"`
}

// RedriveResult counts the dead letters moved.
type RedriveResult struct {
	Moved int `json:"moved"`
}

// PutSchedule creates or replaces a schedule.
type PutSchedule struct {
	Schedule model.Schedule `json:"schedule"`
}

// PutScheduleResult says whether the schedule is new.
type PutScheduleResult struct {
	Created bool `json:"created"`
}

// DeleteSchedule removes a schedule.
type DeleteSchedule struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Name      string `json:"name"`
}

// EnableSchedule enables or disables a schedule.
type EnableSchedule struct {
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Now       time.Time `json:"now"`
}

// FireSchedule records one fire of a schedule for a slot and enqueues its
// event together, so that no slot fires twice, whoever leads. Item is nil
// when the slot is skipped (forbid policy) and only Missed counts.
type FireSchedule struct {
	Namespace string           `json:"namespace,omitempty"`
	Name      string           `json:"name"`
	Slot      time.Time        `json:"slot"`
	Missed    int64            `json:"missed"`
	Item      *model.QueueItem `json:"item,omitempty"`
}

// FireSchedules applies many fires in one entry (the scheduler's batch).
type FireSchedules struct {
	Fires []FireSchedule `json:"fires"`
}

// FireSchedulesResult lists the fires refused (by the schedule's
// qualified name), with why.
type FireSchedulesResult struct {
	Refused map[string]string `json:"refused,omitempty"`
}

// PutSource creates or replaces an event source mapping (its progress
// is kept). Its function must exist.
type PutSource struct {
	Source model.Source `json:"source"`
	Now    time.Time    `json:"now"`
}

// PutSourceResult says whether the mapping is new.
type PutSourceResult struct {
	Created bool `json:"created"`
}

// DeleteSource removes an event source mapping.
type DeleteSource struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// EnableSource enables or disables an event source mapping.
type EnableSource struct {
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Now       time.Time `json:"now"`
}

// SourceProgress stores what the leader's consumers report, by the
// mappings' qualified names.
type SourceProgress struct {
	Progress map[string]model.SourceProgress `json:"progress"`
}

// PutDeadLetters stores dead letters that did not come from the queue:
// the messages an event source mapping gave up on.
type PutDeadLetters struct {
	Letters []model.DeadLetter `json:"letters"`
}

// PutTopic creates a topic or changes its description (see
// state.Store.PutTopic).
type PutTopic struct {
	Topic model.Topic `json:"topic"`
}

// PutTopicResult says whether the topic is new.
type PutTopicResult struct {
	Created bool `json:"created"`
}

// DeleteTopic removes a topic with its subscriptions.
type DeleteTopic struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Name      string `json:"name"`
}

// SubscribeTopic subscribes a function of the topic's namespace (or
// replaces its filters).
type SubscribeTopic struct {
	Namespace  string                `json:"namespace,omitempty"`
	Topic      string                `json:"topic"`
	Subscriber model.TopicSubscriber `json:"subscriber"`
}

// SubscribeTopicResult says whether the subscription is new.
type SubscribeTopicResult struct {
	Created bool `json:"created"`
}

// UnsubscribeTopic removes a function's subscription to a topic.
type UnsubscribeTopic struct {
	Namespace string `json:"namespace,omitempty"`
	Topic     string `json:"topic"`
	Function  string `json:"function"`
}

// Publish commits one message to a topic and, in the same entry, queues
// one asynchronous event per subscriber whose filters match it, with
// request IDs derived from MessageID (model.TopicRequestID): applying it
// twice queues nothing twice.
type Publish struct {
	Namespace string          `json:"namespace,omitempty"`
	Topic     string          `json:"topic"`
	MessageID string          `json:"message_id"`
	Message   json.RawMessage `json:"message"` // at most model.MaxTopicMessage bytes
	Time      time.Time       `json:"time"`
}

// PublishResult counts the subscribers the message went to.
type PublishResult struct {
	Subscribers int `json:"subscribers"`
}

// PutFunctionURL creates or replaces a function's URL; the function must
// exist when it applies. Now is its update time.
type PutFunctionURL struct {
	URL model.FunctionURL `json:"url"`
	Now time.Time         `json:"now"`
}

// PutFunctionURLResult is the URL as stored, and whether it is new.
type PutFunctionURLResult struct {
	URL     model.FunctionURL `json:"url"`
	Created bool              `json:"created"`
}

// DeleteFunctionURL removes a function's URL (the function stays).
type DeleteFunctionURL struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Name      string `json:"name"`                // the function's
}

// PutTestEvent saves a test event (Event.UpdatedAt and UpdatedBy set by
// the writer) under its function, which must exist when it applies; a
// new name beyond model.MaxTestEvents for the function is refused.
type PutTestEvent struct {
	Event model.TestEvent `json:"event"`
}

// PutTestEventResult is the test event as stored, and whether its name
// is new.
type PutTestEventResult struct {
	Event   model.TestEvent `json:"event"`
	Created bool            `json:"created"`
}

// DeleteTestEvent removes a function's saved test event.
type DeleteTestEvent struct {
	Namespace string `json:"namespace,omitempty"` // "": the default namespace
	Function  string `json:"function"`
	Name      string `json:"name"`
}

// PutPrices sets the cluster's price table (Namespace "") or a
// namespace's override, which must exist; Prices nil removes it.
type PutPrices struct {
	Namespace string            `json:"namespace,omitempty"`
	Prices    *model.PriceTable `json:"prices,omitempty"`
}

// PutBudget sets a namespace's budget (the namespace must exist),
// keeping the month's alerts already sent and lifting its hard limit
// until the next budget check.
type PutBudget struct {
	Budget model.Budget `json:"budget"`
}

// DeleteBudget removes a namespace's budget.
type DeleteBudget struct {
	Namespace string `json:"namespace"`
}

// BudgetCheck records what the leader's budget check found for a
// namespace in a month: the alerts it is about to send and whether the
// spend reached the budget. Its result names the alerts not recorded
// before, the only ones to send.
type BudgetCheck struct {
	Namespace string   `json:"namespace"`
	Month     string   `json:"month"` // YYYY-MM
	Alerts    []string `json:"alerts,omitempty"`
	Exceeded  bool     `json:"exceeded,omitempty"`
}

// BudgetCheckResult is BudgetCheck's result.
type BudgetCheckResult struct {
	Fresh []string `json:"fresh,omitempty"`
}

// RecordBuild records a dependency build of a deploy, succeeded (with
// its layer, which later builds of the same request reuse) or failed.
type RecordBuild struct {
	Build model.Build `json:"build"`
}

// PublishLayer stores the next version of a layer (its zip stored and
// replicated before); the result is the version as stored.
type PublishLayer struct {
	Layer model.Layer `json:"layer"`
}

// PublishLayerResult is PublishLayer's result.
type PublishLayerResult struct {
	Layer model.Layer `json:"layer"`
}

// DeleteLayer removes a layer version no function mounts.
type DeleteLayer struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Version   int64  `json:"version"`
}

// PublishVersion makes the next version of a function from its head
// (or returns the latest, if that is of the head's revision already).
type PublishVersion struct {
	Namespace   string    `json:"namespace,omitempty"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Now         time.Time `json:"now"`
}

// PublishVersionResult is PublishVersion's result: the version, and
// whether this command made it.
type PublishVersionResult struct {
	Function model.Function `json:"function"`
	Created  bool           `json:"created"`
}

// DeleteVersion removes a published version no alias routes to.
type DeleteVersion struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Version   int64  `json:"version"`
}

// PutAlias creates an alias (Create) or replaces one.
type PutAlias struct {
	Alias  model.Alias `json:"alias"`
	Create bool        `json:"create,omitempty"`
	Now    time.Time   `json:"now"`
}

// PutAliasResult is PutAlias's result: the alias as stored.
type PutAliasResult struct {
	Alias model.Alias `json:"alias"`
}

// TagFunction sets the tags Set (replacing the values of keys the
// function has) and removes the keys Remove, in one step, without a new
// revision.
type TagFunction struct {
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name"`
	Set       map[string]string `json:"set,omitempty"`
	Remove    []string          `json:"remove,omitempty"`
}

// DeleteAlias removes an alias.
type DeleteAlias struct {
	Namespace string `json:"namespace,omitempty"`
	Function  string `json:"function"`
	Name      string `json:"name"`
}
