package worker

import "nimbus/internal/model"

// LogTailBytes is how much of an invocation's log its record keeps (the
// end of it); a longer log is kept whole only in the log store of the
// server that ran the invocation.
const LogTailBytes = 4 << 10

// NewRecord builds the record of invocation req, which trigger started
// and which ran with res: every record, synchronous or not, is built
// here. The caller adds what only its path knows (an async event's
// attempts, arrival time and result).
func NewRecord(req Request, trigger string, res Result) model.Invocation {
	fn := req.Function
	rec := model.Invocation{
		ID:            req.RequestID,
		Namespace:     fn.Namespace,
		Function:      fn.Name,
		Revision:      fn.Revision,
		Trigger:       trigger,
		Status:        model.StatusSuccess,
		Start:         res.Start.UTC(),
		DurationMS:    model.DurationMS(res.Duration),
		BilledMS:      res.BilledMS,
		MemoryMB:      fn.MemoryMB,
		MaxMemoryMB:   res.MaxMemoryMB,
		ColdStart:     res.Cold,
		ErrorType:     res.ErrorType,
		LogTail:       tail(res.Log, LogTailBytes),
		Worker:        res.WorkerID,
		ProcessesLeft: res.ProcessesLeft,
		CPUMS:         model.DurationMS(res.CPU),
		Version:       fn.Version,
	}
	if res.InitDuration > 0 {
		rec.InitMS = model.DurationMS(res.InitDuration)
	}
	if res.ErrorType != "" {
		rec.Status = model.StatusFailed
	}
	return rec
}

// tail is the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
