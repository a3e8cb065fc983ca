package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nimbus/internal/blob"
	"nimbus/internal/controlplane"
	"nimbus/internal/gateway"
	"nimbus/internal/logstore"
	"nimbus/internal/nbio"
	"nimbus/internal/notify"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/provided"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/internal/scan"
	svc "nimbus/internal/service"
	"nimbus/internal/worker"
)

// parts are what a node's components build, each field set by the
// component that owns it when it starts, for the components after it.
// Only the goroutine running the lifecycle touches them.
type parts struct {
	opts Options
	log  *slog.Logger
	l    *lifecycle

	logs     *logstore.Store
	scanDir  string // where code scans unpack packages (see resetScratch)
	blobs    *blob.Store
	runtimes []python.Runtime
	exec     sandbox.Executor
	cp       *controlplane.Node
	worker   *worker.Worker

	ln         net.Listener // the API's
	addr       string       // the API's address
	scanPolicy scan.Policy
	gw         *gateway.Gateway
	async      *asyncParts
}

func newParts(opts Options, log *slog.Logger) *parts {
	return &parts{opts: opts, log: log, l: newLifecycle()}
}

// dataStores opens the data directory: the log store (whose lock makes
// the directory this node's), the scan scratch space and the blob store.
func (p *parts) dataStores() component {
	return step{
		start: func(context.Context) error {
			dir := p.opts.DataDir
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			logs, err := logstore.Open(filepath.Join(dir, "logs.db"), 64<<10)
			if err != nil {
				if strings.Contains(err.Error(), "timeout") {
					return fmt.Errorf("data directory %s is in use by another nimbus process", dir)
				}
				return err
			}
			// The log store's lock says the data directory is this node's:
			// what its scans left there can go.
			if p.scanDir, err = resetScratch(dir); err == nil {
				p.blobs, err = blob.Open(filepath.Join(dir, "blobs"))
			}
			if err != nil {
				logs.Close()
				return err
			}
			p.logs = logs
			return nil
		},
		stop: func(context.Context) error { return p.logs.Close() },
	}
}

// pythons finds the Python runtimes instances run with.
func (p *parts) pythons() component {
	return starting(func(context.Context) error {
		rts, err := python.Discover()
		if len(p.opts.Runtimes) > 0 {
			rts, err = python.Given(p.opts.Runtimes)
		}
		if err != nil {
			return fmt.Errorf("looking for Python: %w", err)
		}
		// Every worker offers the provided runtime too: its instances run
		// this binary as their Runtime API server, beside the newest
		// Python (for bootstraps that are Python scripts).
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the nimbus binary for the provided runtime: %w", err)
		}
		p.runtimes = append(rts, provided.Runtime(rts[0], self))
		return nil
	})
}

// executor builds sandboxes (see newExecutor).
func (p *parts) executor() component {
	return step{
		start: func(context.Context) error {
			e, err := newExecutor(p.opts, p.log)
			p.exec = e
			return err
		},
		stop: func(context.Context) error {
			if c, ok := p.exec.(interface{ Close() error }); ok {
				return c.Close()
			}
			return nil
		},
	}
}

// instances is the worker that runs instances in this process, with
// blobs its code store, and the process-wide settings that follow its
// load (Options.FollowInstances).
func (p *parts) instances(id string, blobs func() worker.BlobSource) []component {
	comps := []component{step{
		start: func(context.Context) error {
			w, err := worker.New(worker.Config{
				ID:             id,
				DataDir:        filepath.Join(p.opts.DataDir, "worker"),
				Slots:          p.opts.Slots,
				IdleTimeout:    p.opts.IdleTimeout,
				InstanceMemory: p.opts.InstanceMemory,
				Runtimes:       p.runtimes,
				Executor:       p.exec,
				Prestart:       max(p.opts.Prestart, 0),
				PrestartMost:   p.opts.PrestartMost,
				FreezeAfter:    p.opts.FreezeAfter,
				Blobs:          blobs(),
				Log:            p.workerLog(),
			})
			p.worker = w
			return err
		},
		stop: func(context.Context) error { p.worker.Close(); return nil },
	}}
	if follow := p.opts.FollowInstances; follow != nil {
		comps = append(comps, p.l.service(func(ctx context.Context) error {
			follow(ctx, p.worker.InUse)
			return nil
		}, nil))
	}
	return comps
}

// workerLog is the embedded worker's log (nimbus dev), or the node's own
// (nimbus worker, whose log names the worker already).
func (p *parts) workerLog() *slog.Logger {
	if p.cp != nil {
		return p.log.With("subsystem", "worker")
	}
	return p.log
}

// apiListener listens on the API address; the API's connections read and
// write with raw system calls (package nbio says why).
func (p *parts) apiListener() component {
	return step{
		start: func(context.Context) error {
			ln, err := net.Listen("tcp", p.opts.Listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", p.opts.Listen, err)
			}
			p.ln, p.addr = nbio.Listener{Listener: ln}, ln.Addr().String()
			return nil
		},
		// Serving closes the listener; this closes it when the node
		// stops before it serves.
		stop: func(context.Context) error {
			p.ln.Close()
			return nil
		},
	}
}

// api builds the gateway and the async parts (see newAPI) for placer;
// more adds what only some nodes have. Stopping closes the async parts
// (after the leadership component has ended the last term), then the
// gateway, then the rest of what more gave (closers).
func (p *parts) api(set func() apiSettings, placer func() *placement.Placer, more func(*gateway.Config), closers ...func()) component {
	return step{
		start: func(context.Context) error {
			p.gw, p.async = newAPI(p.cp, placer(), p.blobs, p.logs, set(), p.log, more)
			return nil
		},
		stop: func(context.Context) error {
			p.async.close()
			p.gw.Close()
			for _, c := range closers {
				c()
			}
			return nil
		},
	}
}

// settings are the gateway settings of the options.
func (p *parts) settings() apiSettings {
	return apiSettings{addr: p.addr, timeouts: p.opts.Timeouts, rateLimit: p.opts.RateLimit, pprof: p.opts.Pprof, lambdaRegion: p.opts.LambdaRegion, scanPolicy: p.scanPolicy, scanDir: p.scanDir,
		smtp: notify.SMTP{Addr: p.opts.SMTPAddr, From: p.opts.SMTPFrom}, retention: p.opts.Retention, budgetEvery: p.opts.BudgetCheckEvery,
		backups: p.backups(), scaling: p.opts.Scaling}
}

// leadership runs the leader's services during each term of office of
// this node (see runLeadership); duties, when not nil, once per term.
// Stopping ends the term: its runs have the stop's grace period to end,
// then they are abandoned (queue.Dispatcher.Abandon).
func (p *parts) leadership(duties func(ctx context.Context)) component {
	var (
		cancel context.CancelFunc
		done   chan struct{}
	)
	return step{
		start: func(ctx context.Context) error {
			var lctx context.Context
			lctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			done = make(chan struct{})
			go func() {
				defer close(done)
				runLeadership(lctx, p.cp, p.log.With("subsystem", "leader"), func(ctx context.Context) { p.async.term(ctx, duties) })
			}()
			return nil
		},
		stop: func(ctx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
			}
			p.async.abandon()
			<-done
			return nil
		},
	}
}

// serveAPI serves the gateway on the API listener, over TLS when asked
// (http2 says whether to offer HTTP/2 there), from its start, once the
// gateway is built. A Serve error stops the node; stopping lets
// in-flight requests finish within the grace period, then cuts them off.
func (p *parts) serveAPI(http2 bool) component {
	a := p.apiServer(http2)
	return step{
		start: func(ctx context.Context) error {
			a.starting.Serve(p.gw)
			return a.open(ctx)
		},
		stop: a.serve.Stop,
	}
}

// serveAPIEarly serves the API as serveAPI does, but from open's start,
// right after the listener: until handOver's start places the gateway,
// it answers as a starting server (gateway.Starting), so that a server
// loading a large state answers at once. handOver goes where serveAPI
// would: its stop is the graceful one; open's stop only ends the serving
// when the node stops before handOver started.
func (p *parts) serveAPIEarly(http2 bool) (open, handOver component) {
	a := p.apiServer(http2)
	open = step{start: a.open, stop: a.serve.Stop}
	handOver = step{
		start: func(context.Context) error {
			a.starting.Serve(p.gw)
			return nil
		},
		stop: a.serve.Stop,
	}
	return open, handOver
}

// apiServing is the API's HTTP server over the node's listener.
type apiServing struct {
	starting *gateway.Starting // the server's handler
	serve    component         // runs Serve; stopping it shuts the server down (once)
	open     func(ctx context.Context) error
}

// apiServer makes the API's server: its handler a gateway.Starting
// (with no gateway until its Serve), open wraps the listener in TLS when
// asked and starts serve, and serve's stop shuts the server down,
// letting in-flight requests finish within the stop's context (a second
// stop finds nothing left to do).
func (p *parts) apiServer(http2 bool) *apiServing {
	a := &apiServing{starting: gateway.NewStarting(p.log.With("subsystem", "gateway"))}
	srv := &http.Server{
		Handler:           a.starting,
		ReadHeaderTimeout: p.opts.Timeouts.header(),
		IdleTimeout:       2 * time.Minute,
	}
	a.serve = p.l.service(func(context.Context) error {
		if err := srv.Serve(p.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API server: %w", err)
		}
		return nil
	}, func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		return nil
	})
	a.open = func(ctx context.Context) error {
		srv.ErrorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)
		if p.opts.TLS.Enabled() {
			cfg, certFile, err := p.opts.TLS.serverConfig(p.opts.DataDir, p.addr)
			if err != nil {
				return err
			}
			if http2 {
				var protocols http.Protocols
				protocols.SetHTTP1(true)
				protocols.SetHTTP2(true)
				srv.Protocols = &protocols
			}
			p.ln = tls.NewListener(p.ln, cfg)
			p.log.Info("serving the API over TLS", "certificate", certFile)
		}
		return a.serve.Start(ctx)
	}
	return a
}

// scheme is the API's URL scheme.
func (p *parts) scheme() string {
	if p.opts.TLS.Enabled() {
		return "https"
	}
	return "http"
}

// banner prints what the node tells its user once it runs (start), and
// what it says as it stops (stop; nil for nothing).
func banner(start func(), stop func()) component {
	return step{
		start: func(context.Context) error { start(); return nil },
		stop: func(context.Context) error {
			if stop != nil {
				stop()
			}
			return nil
		},
	}
}

// backups is the backup schedule, its directory DATA/backups unless
// given.
func (p *parts) backups() svc.BackupSchedule {
	b := p.opts.Backups
	if b.Dir == "" {
		b.Dir = filepath.Join(p.opts.DataDir, "backups")
	}
	return b
}
