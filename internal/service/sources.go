package service

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Bounds and defaults of an event source mapping's settings.
const (
	maxSourceBatch       = 10000
	maxSourceWindow      = 300 * time.Second
	maxSourceConcurrency = 100
	maxSourceRetries     = 100
	maxSourceRetryDelay  = time.Hour
	defaultSourceBatch   = 100
	defaultSourceRetries = 3
	defaultSourceDelay   = time.Second
)

// Sources lists namespace ns's event source mappings, those of function
// fn only when fn is not "".
func (s *Service) Sources(ns, fn string) []model.Source {
	out := []model.Source{}
	for _, src := range s.store.Sources(ns) {
		if fn == "" || src.Function == fn {
			out = append(out, src)
		}
	}
	return out
}

// Source is event source mapping name of namespace ns.
func (s *Service) Source(ns, name string) (model.Source, error) {
	return s.store.Source(model.QualifiedName(ns, name))
}

// PutSource creates or replaces event source mapping src in namespace ns
// after checking and completing its settings; it reports whether the
// mapping is new. A password in the URL is taken out of it and kept as
// the mapping's secret; a replace that gives none keeps the stored one
// for the same URL. The broker is not contacted: a mapping whose broker
// cannot be reached is stored, and its consumer says so and retries.
func (s *Service) PutSource(ctx context.Context, ns string, src model.Source) (model.Source, bool, error) {
	src.Namespace = ns
	if err := checkSource(&src); err != nil {
		return src, false, err
	}
	if err := s.checkTarget(ns, src.Function); err != nil {
		return src, false, err
	}
	if old, err := s.store.Source(model.QualifiedName(ns, src.Name)); err == nil && src.Password == "" && old.URL == src.URL {
		src.Password = old.Password
	}
	src.Progress = model.SourceProgress{}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutSource{Source: src, Now: time.Now().UTC()})
	if err != nil {
		return src, false, err
	}
	stored, err := s.Source(ns, src.Name)
	return stored, res.Created, err
}

// DeleteSource removes event source mapping name of namespace ns and
// returns it. Its consumer stops within a moment; the messages it holds
// unacknowledged go back to the broker.
func (s *Service) DeleteSource(ctx context.Context, ns, name string) (model.Source, error) {
	src, err := s.Source(ns, name)
	if err != nil {
		return src, err
	}
	_, err = fsm.Apply(ctx, s.d.Control, fsm.DeleteSource{Namespace: ns, Name: name})
	return src, err
}

// EnableSource enables or disables event source mapping name of
// namespace ns.
func (s *Service) EnableSource(ctx context.Context, ns, name string, enabled bool) (model.Source, error) {
	if _, err := fsm.Apply(ctx, s.d.Control, fsm.EnableSource{Namespace: ns, Name: name, Enabled: enabled, Now: time.Now().UTC()}); err != nil {
		return model.Source{}, err
	}
	return s.Source(ns, name)
}

// checkSource checks a mapping's settings, fills in the defaults, and
// moves a password out of its URL.
func checkSource(src *model.Source) error {
	invalid := func(format string, args ...any) error { return state.Errorf(state.ErrInvalid, format, args...) }
	if src.Function == "" {
		return invalid("an event source mapping needs a function (--function)")
	}
	var schemes []string
	var target, flag string
	switch src.Type {
	case model.SourceRabbitMQ:
		schemes, target, flag = []string{"amqp", "amqps"}, src.Queue, "--queue"
	case model.SourceKafka:
		schemes, target, flag = []string{"kafka"}, src.Topic, "--topic"
	case model.SourceNATS:
		schemes, target, flag = []string{"nats", "tls"}, src.Subject, "--subject"
	case "":
		return invalid("an event source mapping needs a type (--type rabbitmq, kafka or nats)")
	default:
		return invalid("unknown event source type %q: use rabbitmq, kafka or nats", src.Type)
	}
	if target == "" {
		return invalid("a %s source needs %s", src.Type, flag)
	}
	if src.Type == model.SourceKafka && src.URL != "" && !strings.Contains(src.URL, "://") {
		src.URL = "kafka://" + src.URL // a bare broker list: host:port,host:port
	}
	u, err := url.Parse(src.URL)
	switch {
	case src.URL == "":
		return invalid("a %s source needs the broker's --url (%s://host:port)", src.Type, schemes[0])
	case err != nil:
		return invalid("the URL %q does not parse: %v", model.MaskURL(src.URL), err)
	case !slices.Contains(schemes, u.Scheme):
		return invalid("a %s URL starts with %s://, not %q", src.Type, strings.Join(schemes, ":// or "), u.Scheme+"://")
	case u.Host == "":
		return invalid("the URL %q names no host", model.MaskURL(src.URL))
	}
	if pw, ok := u.User.Password(); ok {
		src.Password = pw
		u.User = url.User(u.User.Username())
		src.URL = u.String()
	}
	switch {
	case src.BatchSize == 0:
		src.BatchSize = defaultSourceBatch
	case src.BatchSize < 1 || src.BatchSize > maxSourceBatch:
		return invalid("the batch size is %d: it must be between 1 and %d", src.BatchSize, maxSourceBatch)
	}
	if w := time.Duration(src.BatchWindow); w < 0 || w > maxSourceWindow {
		return invalid("the batch window is %s: it must be between 0 and %s", w, maxSourceWindow)
	}
	switch {
	case src.Concurrency == 0:
		src.Concurrency = 1
	case src.Concurrency < 1 || src.Concurrency > maxSourceConcurrency:
		return invalid("the concurrency is %d: it must be between 1 and %d", src.Concurrency, maxSourceConcurrency)
	}
	switch src.StartFrom {
	case "":
		src.StartFrom = "latest"
	case "latest", "earliest":
	default:
		return invalid("start from %q: use latest or earliest", src.StartFrom)
	}
	switch src.Format {
	case "":
		src.Format = "json"
	case "json", "raw":
	default:
		return invalid("format %q: use json (message bodies are JSON) or raw (passed as base64)", src.Format)
	}
	if src.Retries < 0 || src.Retries > maxSourceRetries {
		return invalid("retries is %d: it must be between 0 and %d", src.Retries, maxSourceRetries)
	}
	switch d := time.Duration(src.RetryDelay); {
	case d == 0:
		src.RetryDelay = model.Duration(defaultSourceDelay)
	case d < 0 || d > maxSourceRetryDelay:
		return invalid("the retry delay is %s: it must be between 0 and %s", d, maxSourceRetryDelay)
	}
	return nil
}
