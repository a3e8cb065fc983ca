package testcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// step is one write of the script below, run through the typed Apply; it
// returns the typed result as any.
type step struct {
	name string
	run  func(ctx context.Context, w fsm.Writer) (any, error)
}

func do[R any](name string, c fsm.Command[R]) step {
	return step{name, func(ctx context.Context, w fsm.Writer) (any, error) { return fsm.Apply(ctx, w, c) }}
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// script writes every command at least once, and the errors callers
// tell apart: an unknown object, a namespace that is not empty, a slot
// fired twice.
func script() []step {
	item := func(id string) model.QueueItem {
		return model.QueueItem{RequestID: id, Function: "f", Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: t0}
	}
	fire := func(slot time.Time, id string) fsm.FireSchedule {
		it := item(id)
		return fsm.FireSchedule{Name: "tick", Slot: slot, Item: &it}
	}
	fnIn := func(ns, name string) model.Function {
		return model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, Namespace: ns, CodeSHA256: "aa"}
	}
	return []step{
		do("a namespace is made", fsm.PutNamespace{Namespace: model.Namespace{Name: "team", CreatedAt: t0}}),
		do("a function is deployed", fsm.UpsertFunction{Function: fnIn("", "f"), Now: t0}),
		do("a function is deployed into the namespace", fsm.UpsertFunction{Function: fnIn("team", "g"), Now: t0}),
		do("a namespace that holds a function is not removed", fsm.DeleteNamespace{Name: "team"}),
		do("an unknown namespace is not removed", fsm.DeleteNamespace{Name: "nowhere"}),
		do("an unknown function is not deleted", fsm.DeleteFunction{Name: "nowhere"}),
		do("a version is published", fsm.PublishVersion{Name: "f", Description: "first", Now: t0}),
		do("publishing an unchanged head returns its version", fsm.PublishVersion{Name: "f", Now: t0}),
		do("a version of an unknown function", fsm.PublishVersion{Name: "nowhere", Now: t0}),
		do("an alias is made", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "live", Version: 1}, Create: true, Now: t0}),
		do("an alias is not made twice", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "live", Version: 1}, Create: true, Now: t0}),
		do("an alias of a version that does not exist", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "next", Version: 9}, Create: true, Now: t0}),
		do("an alias is pointed at $LATEST", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "live"}, Now: t0}),
		do("an unknown alias is not updated", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "nowhere", Version: 1}, Now: t0}),
		do("a version an alias routes to is not removed", fsm.PutAlias{Alias: model.Alias{Function: "f", Name: "pinned", Version: 1}, Create: true, Now: t0}),
		do("the version is kept while the alias names it", fsm.DeleteVersion{Name: "f", Version: 1}),
		do("the alias is removed", fsm.DeleteAlias{Function: "f", Name: "pinned"}),
		do("an unknown alias is not removed", fsm.DeleteAlias{Function: "f", Name: "pinned"}),
		do("the version is removed", fsm.DeleteVersion{Name: "f", Version: 1}),
		do("the function is tagged", fsm.TagFunction{Name: "f", Set: map[string]string{"team": "orders", "cost": "a"}}),
		do("a tag is removed and one changed", fsm.TagFunction{Name: "f", Set: map[string]string{"team": "billing"}, Remove: []string{"cost"}}),
		do("a reserved tag key is refused", fsm.TagFunction{Name: "f", Set: map[string]string{"aws:x": "y"}}),
		do("an unknown function is not tagged", fsm.TagFunction{Name: "nowhere", Set: map[string]string{"a": "b"}}),
		do("an unknown version is not removed", fsm.DeleteVersion{Name: "f", Version: 1}),
		do("a function named by a schedule", fsm.PutSchedule{Schedule: model.Schedule{Name: "tick", Function: "f", Expression: "@every 1s", CreatedAt: t0}}),
		do("a function a schedule names is not removed without force", fsm.RemoveFunction{Name: "f"}),
		do("a slot fires", fire(t0.Add(time.Second), "fire-1")),
		do("the same slot does not fire again", fire(t0.Add(time.Second), "fire-2")),
		do("fires in a batch", fsm.FireSchedules{Fires: []fsm.FireSchedule{fire(t0.Add(time.Second), "fire-3"), fire(t0.Add(2*time.Second), "fire-4")}}),
		do("a schedule is disabled", fsm.EnableSchedule{Name: "tick", Enabled: false, Now: t0}),
		do("an unknown schedule is not enabled", fsm.EnableSchedule{Name: "nowhere", Enabled: true, Now: t0}),
		do("events are queued", fsm.Enqueue{Items: []model.QueueItem{item("a"), item("b")}}),
		do("events are leased", fsm.Lease{Leases: []fsm.LeaseRequest{{RequestID: "a", Until: t0.Add(time.Minute)}, {RequestID: "b", Until: t0.Add(time.Minute)}}, Now: t0}),
		do("outcomes are applied, a stale one refused", fsm.Finish{Outcomes: []fsm.Outcome{
			{RequestID: "a", Epoch: 1, Kind: fsm.OutcomeComplete, Record: model.Invocation{ID: "a", Function: "f", Status: model.StatusSuccess}},
			{RequestID: "b", Epoch: 7, Kind: fsm.OutcomeComplete},
		}, Now: t0}),
		do("a dead letter is redriven", fsm.Redrive{IDs: []string{"a", "missing"}, Now: t0}),
		do("records are stored", fsm.RecordInvocations{Records: []model.Invocation{{ID: "r1", Function: "f", Start: t0}}, Retention: model.DefaultRetention(), Now: t0}),
		do("a key is stored", fsm.PutKey{Key: model.Key{ID: "k1", SecretHash: "abc", Role: "admin", CreatedAt: t0}}),
		do("the key is revoked", fsm.DeleteKey{ID: "k1"}),
		do("an unknown key is not revoked", fsm.DeleteKey{ID: "k1"}),
		do("an audit entry", fsm.Audit{Entries: []model.AuditEntry{{Time: t0, Action: "deploy"}}}),
		do("a server's addresses", fsm.PutServer{Server: model.ServerInfo{ID: "s9", Raft: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}}),
		do("a setting", fsm.PutSetting{Key: "k", Value: "v", IfAbsent: true}),
		do("a subscription", fsm.PutSubscription{Subscription: model.Subscription{ID: "sub1", Namespace: "default", On: []string{"failure"}, Webhook: "http://127.0.0.1:1/", Created: t0}}),
		do("the subscription is removed", fsm.DeleteSubscription{ID: "sub1"}),
		do("an unknown subscription is not removed", fsm.DeleteSubscription{ID: "sub1"}),
		do("a user", fsm.PutUser{User: model.User{Name: "ada", Role: "viewer", PasswordHash: "h", CreatedAt: t0}, Create: true}),
		do("a user name taken", fsm.PutUser{User: model.User{Name: "ada", Role: "viewer", PasswordHash: "h", CreatedAt: t0}, Create: true}),
		do("a session", fsm.PutSession{Session: model.Session{ID: "s1", SecretHash: "x", User: "ada", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, Now: t0}),
		do("the session ends", fsm.DeleteSession{ID: "s1"}),
		do("the user is removed", fsm.DeleteUser{Name: "ada"}),
		do("an unknown user is not removed", fsm.DeleteUser{Name: "ada"}),
		do("a function URL", fsm.PutFunctionURL{URL: model.FunctionURL{Function: "f", Auth: "none"}, Now: t0}),
		do("a URL of an unknown function", fsm.PutFunctionURL{URL: model.FunctionURL{Function: "nowhere", Auth: "none"}, Now: t0}),
		do("the function URL is removed", fsm.DeleteFunctionURL{Name: "f"}),
		do("a test event", fsm.PutTestEvent{Event: model.TestEvent{Function: "f", Name: "hello", Event: json.RawMessage(`{"a":1}`), UpdatedAt: t0, UpdatedBy: "k1"}}),
		do("a test event of an unknown function", fsm.PutTestEvent{Event: model.TestEvent{Function: "nowhere", Name: "hello", Event: json.RawMessage(`{}`), UpdatedAt: t0}}),
		do("a second test event", fsm.PutTestEvent{Event: model.TestEvent{Function: "f", Name: "other", Event: json.RawMessage(`[]`), UpdatedAt: t0}}),
		do("the test event is removed", fsm.DeleteTestEvent{Function: "f", Name: "hello"}),
		do("an unknown test event is not removed", fsm.DeleteTestEvent{Function: "f", Name: "hello"}),
		do("the cluster's prices", fsm.PutPrices{Prices: &model.PriceTable{Currency: "EUR", PerGBSecond: 0.00002, PerMillionRequests: 0.25}}),
		do("a namespace's prices", fsm.PutPrices{Namespace: "team", Prices: &model.PriceTable{Currency: "EUR", PerGBSecond: 0.00001}}),
		do("the prices of an unknown namespace", fsm.PutPrices{Namespace: "nowhere", Prices: &model.PriceTable{Currency: "EUR"}}),
		do("a namespace's prices are removed", fsm.PutPrices{Namespace: "team"}),
		do("a budget", fsm.PutBudget{Budget: model.Budget{Namespace: "team", Monthly: 50, Notify: []int{50, 100}, HardLimit: true, UpdatedAt: t0}}),
		do("a budget of an unknown namespace", fsm.PutBudget{Budget: model.Budget{Namespace: "nowhere", Monthly: 5}}),
		do("a budget check", fsm.BudgetCheck{Namespace: "team", Month: "2026-12", Alerts: []string{"spend:50", "forecast:100"}, Exceeded: true}),
		do("a budget check of a namespace without one", fsm.BudgetCheck{Namespace: "default", Month: "2026-12"}),
		do("a budget is raised", fsm.PutBudget{Budget: model.Budget{Namespace: "team", Monthly: 500, Notify: []int{80}, UpdatedAt: t0}}),
		do("a second budget", fsm.PutBudget{Budget: model.Budget{Namespace: "default", Monthly: 1, UpdatedAt: t0}}),
		do("the second budget is removed", fsm.DeleteBudget{Namespace: "default"}),
		do("an unknown budget is not removed", fsm.DeleteBudget{Namespace: "default"}),
		do("a dependency build", fsm.RecordBuild{Build: model.Build{ID: "b1", Namespace: "team", Function: "g", Runtime: "python3.11", Status: model.BuildSucceeded, StartedAt: t0,
			Layer: &model.DepLayer{SHA256: "ab", Size: 10, Runtime: "python3.11", Packages: []string{"x==1"}, Key: "k", CacheKey: "c"}}}),
		do("a failed dependency build", fsm.RecordBuild{Build: model.Build{ID: "b2", Function: "f", Status: model.BuildFailed, Error: "pip: no", StartedAt: t0}}),
		do("a build recorded twice", fsm.RecordBuild{Build: model.Build{ID: "b2", Function: "f", Status: model.BuildFailed, StartedAt: t0}}),
		do("a layer", fsm.PublishLayer{Layer: model.Layer{Name: "lib", SHA256: "cd", Size: 5, Runtimes: []string{"python3.11"}, CreatedAt: t0}}),
		do("a second version of the layer", fsm.PublishLayer{Layer: model.Layer{Name: "lib", SHA256: "ef", Size: 6, CreatedAt: t0}}),
		do("a layer of an unknown namespace", fsm.PublishLayer{Layer: model.Layer{Namespace: "nowhere", Name: "lib", SHA256: "cd", CreatedAt: t0}}),
		do("a function mounts the layer", fsm.UpsertFunction{Function: model.Function{FunctionConfig: model.FunctionConfig{Name: "uses", Handler: "main.handler", Layers: []string{"lib:2"}},
			LayerRefs: []model.LayerRef{{Name: "lib", Version: 2, SHA256: "ef"}}}, Now: t0}),
		do("a function mounts a layer that does not exist", fsm.UpsertFunction{Function: model.Function{FunctionConfig: model.FunctionConfig{Name: "lacks", Handler: "main.handler"},
			LayerRefs: []model.LayerRef{{Name: "lib", Version: 9, SHA256: "ef"}}}, Now: t0}),
		do("a layer in use is not removed", fsm.DeleteLayer{Name: "lib", Version: 2}),
		do("the first version of the layer is removed", fsm.DeleteLayer{Name: "lib", Version: 1}),
		do("an unknown layer is not removed", fsm.DeleteLayer{Name: "lib", Version: 1}),
		do("the function that mounts the layer is removed", fsm.RemoveFunction{Name: "uses"}),
		do("a topic", fsm.PutTopic{Topic: model.Topic{Name: "orders", CreatedAt: t0}}),
		do("a subscription to the topic", fsm.SubscribeTopic{Topic: "orders", Subscriber: model.TopicSubscriber{Function: "f", CreatedAt: t0}}),
		do("a publish to the topic", fsm.Publish{Topic: "orders", MessageID: "m1", Message: json.RawMessage(`{"a":1}`), Time: t0}),
		do("a publish to an unknown topic", fsm.Publish{Topic: "nowhere", MessageID: "m2", Message: json.RawMessage(`{}`), Time: t0}),
		do("the subscription to the topic ends", fsm.UnsubscribeTopic{Topic: "orders", Function: "f"}),
		do("the topic is removed", fsm.DeleteTopic{Name: "orders"}),
		do("an event source mapping", fsm.PutSource{Source: model.Source{Name: "q", Function: "f", Type: model.SourceRabbitMQ, URL: "amqp://127.0.0.1:1/", Queue: "q"}, Now: t0}),
		do("a mapping of an unknown function", fsm.PutSource{Source: model.Source{Name: "r", Function: "nowhere", Type: model.SourceNATS}, Now: t0}),
		do("the mapping is disabled", fsm.EnableSource{Name: "q", Enabled: false, Now: t0}),
		do("the mapping reports progress", fsm.SourceProgress{Progress: map[string]model.SourceProgress{"default/q": {State: model.SourceRunning, Received: 3}}}),
		do("a mapping's dead letters", fsm.PutDeadLetters{Letters: []model.DeadLetter{{RequestID: "source:default/q:1", Function: "f", Event: json.RawMessage(`{}`), At: t0}}}),
		do("the mapping is removed", fsm.DeleteSource{Name: "q"}),
		do("an unknown mapping is not removed", fsm.DeleteSource{Name: "q"}),
		do("the schedule is removed", fsm.DeleteSchedule{Name: "tick"}),
		do("a function is removed with force", fsm.RemoveFunction{Name: "f", Force: true}),
		do("the old delete removes a function", fsm.DeleteFunction{Namespace: "team", Name: "g"}),
		do("the emptied namespace is removed", fsm.DeleteNamespace{Name: "team"}),
	}
}

type answer struct {
	result any
	code   string // the error's fsm code
	err    string
}

func runScript(t *testing.T, c *Cluster, through int) []answer {
	t.Helper()
	var out []answer
	w := c.Nodes[through].Via(c.LeaderLink(through, nil))
	for _, s := range script() {
		res, err := s.run(c.Context(10*time.Second), w)
		a := answer{result: res}
		if err != nil {
			a = answer{code: fsm.ErrorCode(err), err: err.Error()}
		}
		out = append(out, a)
	}
	return out
}

// TestEveryCommandAnswersAlikeOnTheLeaderAndThroughAFollower runs the
// same writes on two clusters, through the leader of one and a follower
// of the other: every result has the same type and value, and every error
// is the same sentinel with the same message (so the gateway answers with
// the same status: a namespace that is not empty is a conflict through
// any server).
func TestEveryCommandAnswersAlikeOnTheLeaderAndThroughAFollower(t *testing.T) {
	seen := map[fsm.CommandType]bool{}
	for _, s := range script() {
		res, _ := s.run(context.Background(), recordType{seen})
		_ = res
	}
	for ct := fsm.CommandType(1); fsm.Known(ct); ct++ {
		if !seen[ct] {
			t.Errorf("the script never writes %s", ct)
		}
	}

	a, b := New(t, 3), New(t, 3)
	leader := a.WaitLeader(nil)
	follower := (b.WaitLeader(nil) + 1) % 3
	onLeader, viaFollower := runScript(t, a, leader), runScript(t, b, follower)
	for i, s := range script() {
		l, f := onLeader[i], viaFollower[i]
		if reflect.TypeOf(l.result) != reflect.TypeOf(f.result) || !reflect.DeepEqual(l.result, f.result) {
			t.Errorf("%s: leader %T %+v, follower %T %+v", s.name, l.result, l.result, f.result, f.result)
		}
		if l.code != f.code || l.err != f.err {
			t.Errorf("%s: leader error %q (%s), follower error %q (%s)", s.name, l.err, l.code, f.err, f.code)
		}
	}
	want := map[string]string{
		"a namespace that holds a function is not removed": "not_empty",
		"an unknown namespace is not removed":              "not_found",
		"an unknown function is not deleted":               "not_found",
		"the same slot does not fire again":                "slot_fired",
		"an unknown schedule is not enabled":               "not_found",
		"an unknown key is not revoked":                    "not_found",
		"an unknown subscription is not removed":           "not_found",
		"an unknown user is not removed":                   "not_found",
		"a URL of an unknown function":                     "not_found",
		"a test event of an unknown function":              "not_found",
		"an unknown test event is not removed":             "not_found",
		"a publish to an unknown topic":                    "not_found",
		"a mapping of an unknown function":                 "not_found",
		"an unknown mapping is not removed":                "not_found",
		"the prices of an unknown namespace":               "not_found",
		"a budget of an unknown namespace":                 "not_found",
		"a budget check of a namespace without one":        "not_found",
		"an unknown budget is not removed":                 "not_found",
		"a build recorded twice":                           "conflict",
		"a layer of an unknown namespace":                  "not_found",
		"a function mounts a layer that does not exist":    "not_found",
		"a layer in use is not removed":                    "conflict",
		"an unknown layer is not removed":                  "not_found",
		"a version of an unknown function":                 "not_found",
		"an alias is not made twice":                       "conflict",
		"an alias of a version that does not exist":        "invalid",
		"an unknown alias is not updated":                  "not_found",
		"the version is kept while the alias names it":     "conflict",
		"an unknown alias is not removed":                  "not_found",
		"an unknown version is not removed":                "not_found",
		"a reserved tag key is refused":                    "invalid",
		"an unknown function is not tagged":                "not_found",
	}
	for i, s := range script() {
		if code := viaFollower[i].code; code != want[s.name] {
			t.Errorf("%s: through a follower the error code is %q (%s), want %q", s.name, code, viaFollower[i].err, want[s.name])
		}
	}
	ns := viaFollower[3]
	if !errors.Is(fsm.ErrorFromCode(ns.code, ns.err), state.ErrNotEmpty) {
		t.Errorf("the namespace error through a follower is not ErrNotEmpty: %+v", ns)
	}
}

// recordType is a Writer that notes which command types it is given and
// applies nothing.
type recordType struct{ seen map[fsm.CommandType]bool }

func (r recordType) Write(_ context.Context, t fsm.CommandType, _ []byte) (any, error) {
	r.seen[t] = true
	return nil, fmt.Errorf("not applied")
}

// TestConcurrentDeploysThroughTwoServersCannotOverReserveANamespace sends
// two deploys at once through the two followers, each reserving more
// than half of the namespace's limit: the FSM applies them one after the
// other and refuses the second, whichever it is.
func TestConcurrentDeploysThroughTwoServersCannotOverReserveANamespace(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(nil)
	if _, err := fsm.Apply(c.Context(10*time.Second), c.Nodes[leader], fsm.PutNamespace{Namespace: model.Namespace{Name: "small", Concurrency: 3, CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	two := 2
	errs := make(chan error, 2)
	for i, name := range []string{"first", "second"} {
		node := (leader + 1 + i) % 3
		fn := model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128, ReservedConcurrency: &two},
			Namespace: "small", CodeSHA256: "aa"}
		go func() {
			_, err := fsm.Apply(c.Context(10*time.Second), c.Nodes[node].Via(c.LeaderLink(node, nil)), fsm.UpsertFunction{Function: fn, Now: t0})
			errs <- err
		}()
	}
	var won, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case errors.Is(err, state.ErrInvalid):
			refused++
		default:
			t.Fatalf("a deploy failed otherwise: %v", err)
		}
	}
	if won != 1 || refused != 1 {
		t.Fatalf("%d deploys won and %d were refused; want exactly one of each", won, refused)
	}
	for i, n := range c.Nodes {
		c.WaitFor(10*time.Second, fmt.Sprintf("s%d holds one function of the namespace", i), func() bool {
			return len(n.Store().Functions("small")) == 1
		})
		if limit, reserved := n.Store().ConcurrencyLimit("small"); limit != 3 || reserved != 2 {
			t.Errorf("s%d: limit %d reserved %d, want 3 and 2", i, limit, reserved)
		}
	}
}
