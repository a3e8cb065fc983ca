package fsm

import (
	"errors"

	"nimbus/pkg/client"
)

// applyQueue applies the asynchronous queue's commands.
func (f *FSM) applyQueue(t CommandType, body []byte) any {
	switch t {
	case EnqueueType:
		var c Enqueue
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return EnqueueResult{Queued: f.store.Enqueue(c.Items)}
	case LeaseType:
		var c Lease
		if err := decode(t, body, &c); err != nil {
			return err
		}
		res := LeaseResult{Epochs: map[string]uint64{}}
		for _, l := range c.Leases {
			if epoch, err := f.store.Lease(l.RequestID, l.Until, c.Now); err == nil {
				res.Epochs[l.RequestID] = epoch
			}
		}
		return res
	case FinishType:
		var c Finish
		if err := decode(t, body, &c); err != nil {
			return err
		}
		res := FinishResult{}
		for _, o := range c.Outcomes {
			var err error
			switch o.Kind {
			case OutcomeComplete:
				err = f.store.Complete(o.RequestID, o.Epoch, o.Record)
			case OutcomeRetry:
				err = f.store.Retry(o.RequestID, o.Epoch, o.NotBefore, o.LastError, o.Refund, o.Record)
			case OutcomeDeadLetter:
				err = f.store.DeadLetter(o.RequestID, o.Epoch, o.Reason, o.LastError, c.Now, o.Record)
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
				f.store.Enqueue(o.Enqueue)
			}
		}
		return res
	case RedriveType:
		var c Redrive
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return RedriveResult{Moved: f.store.Redrive(c.IDs, c.Now)}
	}
	return nil
}

// applySchedule applies the scheduler's commands.
func (f *FSM) applySchedule(t CommandType, body []byte) any {
	switch t {
	case PutScheduleType:
		var c PutSchedule
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return PutScheduleResult{Created: f.store.PutSchedule(c.Schedule)}
	case DeleteScheduleType:
		var c DeleteSchedule
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteSchedule(client.QualifiedName(c.Namespace, c.Name))
	case EnableScheduleType:
		var c EnableSchedule
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.SetScheduleEnabled(client.QualifiedName(c.Namespace, c.Name), c.Enabled, c.Now)
	case FireScheduleType:
		var c FireSchedule
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.FireSchedule(client.QualifiedName(c.Namespace, c.Name), c.Slot, c.Missed, c.Item)
	case FireSchedulesType:
		var c FireSchedules
		if err := decode(t, body, &c); err != nil {
			return err
		}
		res := FireSchedulesResult{}
		for _, fire := range c.Fires {
			qn := client.QualifiedName(fire.Namespace, fire.Name)
			if err := f.store.FireSchedule(qn, fire.Slot, fire.Missed, fire.Item); err != nil {
				if res.Refused == nil {
					res.Refused = map[string]string{}
				}
				res.Refused[qn] = err.Error()
			}
		}
		return res
	}
	return nil
}
