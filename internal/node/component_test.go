package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// recorder makes components that note their starts and stops.
type recorder struct{ events []string }

func (r *recorder) comp(name string, startErr error) component {
	return step{
		start: func(context.Context) error {
			r.events = append(r.events, "start "+name)
			return startErr
		},
		stop: func(context.Context) error {
			r.events = append(r.events, "stop "+name)
			return nil
		},
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestComponentsStartInOrderAndStopInReverse(t *testing.T) {
	for _, c := range []struct {
		name    string
		failing string // the component whose start fails, "" for none
		want    []string
	}{
		{"a node that runs until its context ends stops everything in reverse", "",
			[]string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
		{"a failed start stops what started before it, and only that", "b",
			[]string{"start a", "start b", "stop a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{}
			boom := errors.New("boom")
			var comps []component
			for _, n := range []string{"a", "b", "c"} {
				var err error
				if n == c.failing {
					err = boom
				}
				comps = append(comps, r.comp(n, err))
			}
			ctx, cancel := context.WithCancel(t.Context())
			if c.failing == "" {
				cancel()
			} else {
				defer cancel()
			}
			err := newLifecycle().run(ctx, quiet, comps...)
			if (c.failing != "") != errors.Is(err, boom) {
				t.Fatalf("run: %v", err)
			}
			if !slices.Equal(r.events, c.want) {
				t.Fatalf("events %v; want %v", r.events, c.want)
			}
		})
	}
}

// A service that fails stops the node with its error, and the other
// services' goroutines have returned when run does.
func TestAFailingServiceStopsTheNodeAndEveryGoroutineEnds(t *testing.T) {
	l := newLifecycle()
	stopped := make(chan struct{})
	long := l.service(func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	}, nil)
	boom := errors.New("serve: boom")
	failing := l.service(func(context.Context) error { return boom }, nil)
	done := make(chan error, 1)
	go func() { done <- l.run(context.Background(), quiet, long, failing) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("run: %v; want the service's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed service did not stop the node")
	}
	select {
	case <-stopped:
	default:
		t.Fatal("run returned before the long-running service's goroutine ended")
	}
}

// A service stopped on purpose reports nothing, whatever it returns.
func TestAStoppedServiceIsNotAFailure(t *testing.T) {
	l := newLifecycle()
	svc := l.service(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.run(ctx, quiet, svc); err != nil {
		t.Fatalf("run: %v; want nil", err)
	}
}
