package fsm

import (
	"encoding/json"
	"errors"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// registry declares every command once: its number, and the function that
// applies it (which fixes its body's type and its result's type). The
// FSM's dispatch, the commands' names and the decoding of forwarded
// results all derive from it. Append only, as the numbers are.
var registry = newRegistry(
	def(UpsertFunctionType, applyUpsertFunction),
	def(DeleteFunctionType, applyDeleteFunction),
	defCodec(RecordInvocationsType, applyRecordInvocations, encodeRecordInvocations, decodeRecordInvocations),
	def(PutKeyType, applyPutKey),
	def(PutServerType, applyPutServer),
	def(EnqueueType, applyEnqueue),
	def(LeaseType, applyLease),
	def(FinishType, applyFinish),
	def(RedriveType, applyRedrive),
	def(PutScheduleType, applyPutSchedule),
	def(DeleteScheduleType, applyDeleteSchedule),
	def(EnableScheduleType, applyEnableSchedule),
	def(FireScheduleType, applyFireSchedule),
	def(PutSettingType, applyPutSetting),
	def(PutSubscriptionType, applyPutSubscription),
	def(DeleteSubscriptionType, applyDeleteSubscription),
	def(FireSchedulesType, applyFireSchedules),
	def(DeleteKeyType, applyDeleteKey),
	def(AuditType, applyAudit),
	def(PutUserType, applyPutUser),
	def(DeleteUserType, applyDeleteUser),
	def(PutSessionType, applyPutSession),
	def(DeleteSessionType, applyDeleteSession),
	def(PutNamespaceType, applyPutNamespace),
	def(DeleteNamespaceType, applyDeleteNamespace),
	def(RemoveFunctionType, applyRemoveFunction),
	def(PutSourceType, applyPutSource),
	def(DeleteSourceType, applyDeleteSource),
	def(EnableSourceType, applyEnableSource),
	def(SourceProgressType, applySourceProgress),
	def(PutDeadLettersType, applyPutDeadLetters),
	def(PutTopicType, applyPutTopic),
	def(DeleteTopicType, applyDeleteTopic),
	def(SubscribeTopicType, applySubscribeTopic),
	def(UnsubscribeTopicType, applyUnsubscribeTopic),
	def(PublishType, applyPublish),
	def(PutFunctionURLType, applyPutFunctionURL),
	def(DeleteFunctionURLType, applyDeleteFunctionURL),
	def(PutTestEventType, applyPutTestEvent),
	def(DeleteTestEventType, applyDeleteTestEvent),
	def(PutPricesType, applyPutPrices),
	def(PutBudgetType, applyPutBudget),
	def(DeleteBudgetType, applyDeleteBudget),
	def(BudgetCheckType, applyBudgetCheck),
	def(RecordBuildType, applyRecordBuild),
	def(PublishLayerType, applyPublishLayer),
	def(DeleteLayerType, applyDeleteLayer),
	def(PublishVersionType, applyPublishVersion),
	def(DeleteVersionType, applyDeleteVersion),
	def(PutAliasType, applyPutAlias),
	def(DeleteAliasType, applyDeleteAlias),
	def(TagFunctionType, applyTagFunction),
)

// Each command's result type.
func (UpsertFunction) result() *UpsertFunctionResult       { return nil }
func (DeleteFunction) result() *None                       { return nil }
func (RemoveFunction) result() *RemoveFunctionResult       { return nil }
func (RecordInvocations) result() *RecordInvocationsResult { return nil }
func (PutKey) result() *None                               { return nil }
func (DeleteKey) result() *None                            { return nil }
func (Audit) result() *None                                { return nil }
func (PutServer) result() *None                            { return nil }
func (PutSetting) result() *None                           { return nil }
func (PutSubscription) result() *None                      { return nil }
func (DeleteSubscription) result() *None                   { return nil }
func (PutNamespace) result() *PutNamespaceResult           { return nil }
func (DeleteNamespace) result() *None                      { return nil }
func (PutUser) result() *PutUserResult                     { return nil }
func (DeleteUser) result() *None                           { return nil }
func (PutSession) result() *None                           { return nil }
func (DeleteSession) result() *None                        { return nil }
func (Enqueue) result() *EnqueueResult                     { return nil }
func (Lease) result() *LeaseResult                         { return nil }
func (Finish) result() *FinishResult                       { return nil }
func (Redrive) result() *RedriveResult                     { return nil }
func (PutSchedule) result() *PutScheduleResult             { return nil }
func (DeleteSchedule) result() *None                       { return nil }
func (EnableSchedule) result() *None                       { return nil }
func (FireSchedule) result() *None                         { return nil }
func (FireSchedules) result() *FireSchedulesResult         { return nil }
func (PutSource) result() *PutSourceResult                 { return nil }
func (DeleteSource) result() *None                         { return nil }
func (EnableSource) result() *None                         { return nil }
func (SourceProgress) result() *None                       { return nil }
func (PutDeadLetters) result() *None                       { return nil }
func (PutTopic) result() *PutTopicResult                   { return nil }
func (DeleteTopic) result() *None                          { return nil }
func (SubscribeTopic) result() *SubscribeTopicResult       { return nil }
func (UnsubscribeTopic) result() *None                     { return nil }
func (Publish) result() *PublishResult                     { return nil }
func (PutFunctionURL) result() *PutFunctionURLResult       { return nil }
func (DeleteFunctionURL) result() *None                    { return nil }
func (PutTestEvent) result() *PutTestEventResult           { return nil }
func (DeleteTestEvent) result() *None                      { return nil }
func (PutPrices) result() *None                            { return nil }
func (PutBudget) result() *None                            { return nil }
func (DeleteBudget) result() *None                         { return nil }
func (BudgetCheck) result() *BudgetCheckResult             { return nil }
func (RecordBuild) result() *None                          { return nil }
func (PublishLayer) result() *PublishLayerResult           { return nil }
func (DeleteLayer) result() *None                          { return nil }
func (PublishVersion) result() *PublishVersionResult       { return nil }
func (DeleteVersion) result() *None                        { return nil }
func (PutAlias) result() *PutAliasResult                   { return nil }
func (DeleteAlias) result() *None                          { return nil }
func (TagFunction) result() *None                          { return nil }

func applyUpsertFunction(s *state.Store, c UpsertFunction) (UpsertFunctionResult, error) {
	fn, created, err := s.UpsertFunction(c.Function, c.Now)
	return UpsertFunctionResult{Function: fn, Created: created}, err
}

func applyDeleteFunction(s *state.Store, c DeleteFunction) (None, error) {
	return None{}, s.DeleteFunction(model.QualifiedName(c.Namespace, c.Name))
}

func applyRemoveFunction(s *state.Store, c RemoveFunction) (RemoveFunctionResult, error) {
	deps, deleted, err := s.RemoveFunction(model.QualifiedName(c.Namespace, c.Name), c.Force)
	if err != nil {
		return RemoveFunctionResult{}, err
	}
	return RemoveFunctionResult{Deleted: deleted, Dependents: deps}, nil
}

func applyRecordInvocations(s *state.Store, c RecordInvocations) (RecordInvocationsResult, error) {
	return RecordInvocationsResult{Removed: s.AddRecords(c.Records, c.Throttles, c.Retention, c.Now)}, nil
}

func encodeRecordInvocations(c RecordInvocations) ([]byte, error) { return encodeRecords(nil, c), nil }

// decodeRecordInvocations reads the binary body, or the JSON one that
// entries written before the binary encoding hold.
func decodeRecordInvocations(body []byte) (RecordInvocations, error) {
	if len(body) > 0 && (body[0] >= recordsV1 && body[0] <= recordsV5) {
		return decodeRecords(body)
	}
	var c RecordInvocations
	err := json.Unmarshal(body, &c)
	return c, err
}

func applyPutKey(s *state.Store, c PutKey) (None, error) {
	s.PutKey(c.Key)
	return None{}, nil
}

func applyDeleteKey(s *state.Store, c DeleteKey) (None, error) {
	return None{}, s.DeleteKey(c.ID)
}

func applyAudit(s *state.Store, c Audit) (None, error) {
	s.AddAudit(c.Entries)
	return None{}, nil
}

func applyPutServer(s *state.Store, c PutServer) (None, error) {
	s.PutServer(c.Server)
	return None{}, nil
}

func applyPutSetting(s *state.Store, c PutSetting) (None, error) {
	s.PutSetting(c.Key, c.Value, c.IfAbsent)
	return None{}, nil
}

func applyPutSubscription(s *state.Store, c PutSubscription) (None, error) {
	s.PutSubscription(c.Subscription)
	return None{}, nil
}

func applyDeleteSubscription(s *state.Store, c DeleteSubscription) (None, error) {
	return None{}, s.DeleteSubscription(c.ID)
}

func applyPutNamespace(s *state.Store, c PutNamespace) (PutNamespaceResult, error) {
	return PutNamespaceResult{Created: s.PutNamespace(c.Namespace)}, nil
}

func applyDeleteNamespace(s *state.Store, c DeleteNamespace) (None, error) {
	return None{}, s.DeleteNamespace(c.Name)
}

func applyPutUser(s *state.Store, c PutUser) (PutUserResult, error) {
	stored, err := s.PutUser(c.User, c.Create, c.Keep)
	if err != nil {
		return PutUserResult{}, err
	}
	return PutUserResult{Conflict: !stored}, nil
}

func applyDeleteUser(s *state.Store, c DeleteUser) (None, error) {
	return None{}, s.DeleteUser(c.Name)
}

func applyPutSession(s *state.Store, c PutSession) (None, error) {
	return None{}, s.PutSession(c.Session, c.Now)
}

func applyDeleteSession(s *state.Store, c DeleteSession) (None, error) {
	s.DeleteSession(c.ID)
	return None{}, nil
}

func applyEnqueue(s *state.Store, c Enqueue) (EnqueueResult, error) {
	return EnqueueResult{Queued: s.Enqueue(c.Items)}, nil
}

func applyLease(s *state.Store, c Lease) (LeaseResult, error) {
	res := LeaseResult{Epochs: map[string]uint64{}}
	for _, l := range c.Leases {
		if epoch, err := s.Lease(l.RequestID, l.Until, c.Now); err == nil {
			res.Epochs[l.RequestID] = epoch
		}
	}
	return res, nil
}

func applyFinish(s *state.Store, c Finish) (FinishResult, error) {
	res := FinishResult{}
	for _, o := range c.Outcomes {
		var err error
		switch o.Kind {
		case OutcomeComplete:
			err = s.Complete(o.RequestID, o.Epoch, o.Record)
		case OutcomeRetry:
			err = s.Retry(o.RequestID, o.Epoch, o.NotBefore, o.LastError, o.Refund, o.Record)
		case OutcomeDeadLetter:
			err = s.DeadLetter(o.RequestID, o.Epoch, o.Reason, o.LastError, c.Now, o.Record)
		default:
			err = errors.New("unknown outcome " + o.Kind)
		}
		if err != nil {
			if res.Refused == nil {
				res.Refused = map[string]string{}
			}
			res.Refused[o.RequestID] = err.Error()
			continue
		}
		if len(o.Enqueue) > 0 {
			s.Enqueue(o.Enqueue)
		}
	}
	return res, nil
}

func applyRedrive(s *state.Store, c Redrive) (RedriveResult, error) {
	return RedriveResult{Moved: s.Redrive(c.IDs, c.Now)}, nil
}

func applyPutSchedule(s *state.Store, c PutSchedule) (PutScheduleResult, error) {
	return PutScheduleResult{Created: s.PutSchedule(c.Schedule)}, nil
}

func applyDeleteSchedule(s *state.Store, c DeleteSchedule) (None, error) {
	return None{}, s.DeleteSchedule(model.QualifiedName(c.Namespace, c.Name))
}

func applyEnableSchedule(s *state.Store, c EnableSchedule) (None, error) {
	return None{}, s.SetScheduleEnabled(model.QualifiedName(c.Namespace, c.Name), c.Enabled, c.Now)
}

func applyFireSchedule(s *state.Store, c FireSchedule) (None, error) {
	return None{}, s.FireSchedule(model.QualifiedName(c.Namespace, c.Name), c.Slot, c.Missed, c.Item)
}

func applyFireSchedules(s *state.Store, c FireSchedules) (FireSchedulesResult, error) {
	res := FireSchedulesResult{}
	for _, fire := range c.Fires {
		qn := model.QualifiedName(fire.Namespace, fire.Name)
		if err := s.FireSchedule(qn, fire.Slot, fire.Missed, fire.Item); err != nil {
			if res.Refused == nil {
				res.Refused = map[string]string{}
			}
			res.Refused[qn] = err.Error()
		}
	}
	return res, nil
}

func applyPutTopic(s *state.Store, c PutTopic) (PutTopicResult, error) {
	return PutTopicResult{Created: s.PutTopic(c.Topic)}, nil
}

func applyDeleteTopic(s *state.Store, c DeleteTopic) (None, error) {
	return None{}, s.DeleteTopic(model.QualifiedName(c.Namespace, c.Name))
}

func applySubscribeTopic(s *state.Store, c SubscribeTopic) (SubscribeTopicResult, error) {
	created, err := s.SubscribeTopic(model.QualifiedName(c.Namespace, c.Topic), c.Subscriber)
	return SubscribeTopicResult{Created: created}, err
}

func applyUnsubscribeTopic(s *state.Store, c UnsubscribeTopic) (None, error) {
	return None{}, s.UnsubscribeTopic(model.QualifiedName(c.Namespace, c.Topic), c.Function)
}

func applyPublish(s *state.Store, c Publish) (PublishResult, error) {
	n, err := s.Publish(model.QualifiedName(c.Namespace, c.Topic), c.MessageID, c.Message, c.Time)
	return PublishResult{Subscribers: n}, err
}

func applyPutFunctionURL(s *state.Store, c PutFunctionURL) (PutFunctionURLResult, error) {
	u, created, err := s.PutFunctionURL(c.URL, c.Now)
	return PutFunctionURLResult{URL: u, Created: created}, err
}

func applyDeleteFunctionURL(s *state.Store, c DeleteFunctionURL) (None, error) {
	return None{}, s.DeleteFunctionURL(model.QualifiedName(c.Namespace, c.Name))
}

func applyPutTestEvent(s *state.Store, c PutTestEvent) (PutTestEventResult, error) {
	e, created, err := s.PutTestEvent(c.Event)
	return PutTestEventResult{Event: e, Created: created}, err
}

func applyDeleteTestEvent(s *state.Store, c DeleteTestEvent) (None, error) {
	return None{}, s.DeleteTestEvent(model.QualifiedName(c.Namespace, c.Function), c.Name)
}

func applyPutBudget(s *state.Store, c PutBudget) (None, error) {
	return None{}, s.PutBudget(c.Budget)
}

func applyDeleteBudget(s *state.Store, c DeleteBudget) (None, error) {
	return None{}, s.DeleteBudget(c.Namespace)
}

func applyBudgetCheck(s *state.Store, c BudgetCheck) (BudgetCheckResult, error) {
	fresh, err := s.RecordBudgetCheck(c.Namespace, c.Month, c.Alerts, c.Exceeded)
	return BudgetCheckResult{Fresh: fresh}, err
}

func applyPutPrices(s *state.Store, c PutPrices) (None, error) {
	return None{}, s.PutPrices(c.Namespace, c.Prices)
}

func applyRecordBuild(s *state.Store, c RecordBuild) (None, error) {
	return None{}, s.RecordBuild(c.Build)
}

func applyPublishLayer(s *state.Store, c PublishLayer) (PublishLayerResult, error) {
	l, err := s.PublishLayer(c.Layer)
	return PublishLayerResult{Layer: l}, err
}

func applyDeleteLayer(s *state.Store, c DeleteLayer) (None, error) {
	return None{}, s.DeleteLayer(c.Namespace, c.Name, c.Version)
}

func applyPublishVersion(s *state.Store, c PublishVersion) (PublishVersionResult, error) {
	f, created, err := s.PublishVersion(c.Namespace, c.Name, c.Description, c.Now)
	return PublishVersionResult{Function: f, Created: created}, err
}

func applyDeleteVersion(s *state.Store, c DeleteVersion) (None, error) {
	return None{}, s.DeleteVersion(c.Namespace, c.Name, c.Version)
}

func applyPutAlias(s *state.Store, c PutAlias) (PutAliasResult, error) {
	a, err := s.PutAlias(c.Alias, c.Create, c.Now)
	return PutAliasResult{Alias: a}, err
}

func applyTagFunction(s *state.Store, c TagFunction) (None, error) {
	return None{}, s.TagFunction(c.Namespace, c.Name, c.Set, c.Remove)
}

func applyDeleteAlias(s *state.Store, c DeleteAlias) (None, error) {
	return None{}, s.DeleteAlias(c.Namespace, c.Function, c.Name)
}
