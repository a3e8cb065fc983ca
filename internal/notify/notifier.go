package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/smtp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/wire"
)

// Conditions a subscription can name.
const (
	OnSuccess    = "success"
	OnFailure    = "failure"
	OnTimeout    = "timeout"
	OnDeadLetter = "dead_letter"
	// OnBudget: a threshold of the namespace's budget crossed (by the
	// month's spend or its forecast). Namespace-wide: a subscription to
	// it names no function.
	OnBudget = "budget"
)

// Conditions lists the valid conditions.
var Conditions = []string{OnSuccess, OnFailure, OnTimeout, OnDeadLetter, OnBudget}

// conditionsOf returns the conditions a record's state meets ("" state
// changes such as queued meet none).
func conditionsOf(r model.Invocation) []string {
	switch r.Status {
	case model.StatusSuccess:
		return []string{OnSuccess}
	case model.StatusFailed:
		if r.ErrorType == "Sandbox.Timeout" {
			return []string{OnFailure, OnTimeout}
		}
		return []string{OnFailure}
	case model.StatusDeadLetter:
		return []string{OnDeadLetter}
	}
	return nil
}

// SMTP says where e-mail goes; an empty Addr disables e-mail.
type SMTP struct {
	Addr string // host:port of a relay that accepts mail without auth
	From string
}

// Notifier sends the notifications that subscriptions ask for. Feed it
// every record whose status changes with Observe (non-blocking: see
// state.Store.ObserveRecordOutcomes), so that an outcome is notified once
// however often its record is updated after; Run it on the leader
// only, so each notification goes out once.
type Notifier struct {
	subs      func() []model.Subscription
	secret    func(namespace string) string
	smtp      SMTP
	deliverer *Deliverer
	log       *slog.Logger
	ch        chan model.Invocation
	active    atomic.Bool // Run is running: this node leads
}

// NewNotifier returns a notifier over the given subscriptions source.
func NewNotifier(subs func() []model.Subscription, secret func(namespace string) string, smtpCfg SMTP, log *slog.Logger) *Notifier {
	return &Notifier{subs: subs, secret: secret, smtp: smtpCfg, deliverer: &Deliverer{Attempts: 3}, log: log,
		ch: make(chan model.Invocation, 4096)}
}

// Observe offers a record change. It never blocks: past the buffer,
// notifications are dropped (and logged).
func (n *Notifier) Observe(r model.Invocation) {
	if !n.active.Load() || conditionsOf(r) == nil {
		return
	}
	select {
	case n.ch <- r:
	default:
		n.log.Warn("notification dropped: the notifier is behind", "request_id", r.ID)
	}
}

// Run sends notifications until ctx ends; only changes observed while it
// runs are notified.
func (n *Notifier) Run(ctx context.Context) {
	n.active.Store(true)
	defer func() {
		n.active.Store(false)
		n.Drain()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-n.ch:
			n.notify(ctx, r)
		}
	}
}

// Drain discards what was observed (called while not leading).
func (n *Notifier) Drain() {
	for {
		select {
		case <-n.ch:
		default:
			return
		}
	}
}

func (n *Notifier) notify(ctx context.Context, r model.Invocation) {
	conds := conditionsOf(r)
	for _, s := range n.subs() {
		if model.NamespaceOf(s.Namespace) != model.NamespaceOf(r.Namespace) || (s.Function != "" && s.Function != r.Function) {
			continue // a subscription hears only its own namespace
		}
		var matched string
		for _, c := range conds {
			if slices.Contains(s.On, c) {
				matched = c
				break
			}
		}
		if matched == "" {
			continue
		}
		body, _ := json.Marshal(map[string]any{"subscription": s.ID, "condition": matched, "invocation": wire.Invocation(r),
			"time": time.Now().UTC().Format(time.RFC3339Nano)})
		n.send(s, fmt.Sprintf("[nimbus] %s %s: %s", r.Function, matched, r.ID), body)
	}
}

// NotifyBudget sends a budget alert to the subscriptions of its
// namespace that ask for OnBudget. The leader calls it once per alert
// (the alert's commit decided that this leader sends it).
func (n *Notifier) NotifyBudget(a model.BudgetAlert) {
	for _, s := range n.subs() {
		if model.NamespaceOf(s.Namespace) != model.NamespaceOf(a.Namespace) || !slices.Contains(s.On, OnBudget) {
			continue
		}
		body, _ := json.Marshal(map[string]any{"subscription": s.ID, "condition": OnBudget, "budget_alert": a,
			"time": time.Now().UTC().Format(time.RFC3339Nano)})
		subject := fmt.Sprintf("[nimbus] namespace %s: %s %d%% of its %s %.2f budget for %s", a.Namespace, a.Kind, a.Threshold, a.Currency, a.Monthly, a.Month)
		n.send(s, subject, body)
	}
}

// send delivers one notification body to a subscription's webhook (in
// the background, with the deliverer's retries) or e-mail address.
func (n *Notifier) send(s model.Subscription, subject string, body []byte) {
	if s.Webhook != "" {
		go func(url string) {
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if d := n.deliverer.Deliver(dctx, url, n.secret(s.Namespace), body); d.Err != nil {
				n.log.Warn("notification webhook failed", "subscription", s.ID, "err", d.Err)
			}
		}(s.Webhook)
	}
	if s.Email != "" {
		if err := n.mail(s.Email, subject, body); err != nil {
			n.log.Warn("notification e-mail failed", "subscription", s.ID, "err", err)
		}
	}
}

func (n *Notifier) mail(to, subject string, body []byte) error {
	if n.smtp.Addr == "" {
		return fmt.Errorf("no SMTP server configured (--smtp-addr)")
	}
	from := n.smtp.From
	if from == "" {
		from = "nimbus@localhost"
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nContent-Type: application/json\r\n\r\n", from, to, subject)
	msg.Write(body)
	msg.WriteString("\r\n")
	return smtp.SendMail(n.smtp.Addr, nil, from, []string{to}, []byte(msg.String()))
}
