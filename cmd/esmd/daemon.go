package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/esmd-dev/esmd/admin"
	"github.com/esmd-dev/esmd/checkpoint"
	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/destinations"
	"github.com/esmd-dev/esmd/mapping"
)

var (
	// configPath is the file "esmd run" loaded, for reloads.
	configPath string
	// watchConfig makes esmd reload when configPath changes (--watch).
	watchConfig bool
	// watchInterval is how often a watched file is checked.
	watchInterval = time.Second
	// notifyReload subscribes to SIGHUP; tests replace it.
	notifyReload = func() (<-chan os.Signal, func()) {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		return c, func() { signal.Stop(c) }
	}
)

// runner runs one mapping: a stream Runner or an SQSRunner.
type runner interface {
	Run(ctx context.Context) error
	Drain(ctx context.Context) error
}

// active is a running mapping.
type active struct {
	settings config.Settings
	// fingerprint covers everything that, changed, needs a new runner.
	fingerprint string
	r           runner
	stream      *mapping.Runner
	sqs         *mapping.SQSRunner
	started     time.Time
	functionARN string
	done        chan struct{}
	err         error
}

// defaultMemProfileRate is Go's own: one sample per 512 KiB allocated.
const defaultMemProfileRate = 512 * 1024

// daemon owns the running mappings and applies configuration reloads. Its
// methods are called from runDaemon's goroutine only, except snapshot.
type daemonState struct {
	ctx  context.Context // hard stop
	log  *slog.Logger
	cl   *clients
	cps  mapping.Checkpointer
	cfg  *config.Config
	base *config.Config // the configuration esmd started with

	mu       sync.Mutex // guards mappings for snapshot
	mappings map[string]*active
	invokers map[string]mapping.Invoker // by function fingerprint
	closers  []func() error
	hist     *admin.Histograms // nil when the admin server is off
	// exited is signalled (capacity 1) when a runner returns; the loop
	// then collects every mapping whose done is closed.
	exited chan struct{}
}

// runDaemon runs every enabled mapping of cfg until ctx is cancelled (hard
// stop), drain is closed and every mapping has drained, or every mapping has
// stopped on its own. SIGHUP, and changes of the file with --watch, reload
// the configuration: mappings that were added start, removed ones drain and
// stop, changed ones drain and start again from their checkpoints with the
// new settings, as AWS's UpdateEventSourceMapping does. A configuration that
// fails validation is refused and the running one stays.
func runDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, drain <-chan struct{}) error {
	acfg, err := awsConfig(ctx, cfg.AWS)
	if err != nil {
		return err
	}
	d := &daemonState{
		ctx:      ctx,
		log:      log,
		cl:       &clients{cfg: acfg, eps: cfg.AWS.Endpoints},
		base:     cfg,
		mappings: map[string]*active{},
		invokers: map[string]mapping.Invoker{},
		exited:   make(chan struct{}, 1),
	}
	defer d.closeAll()
	if addr := cfg.Server.Address(); addr != "" {
		if cfg.Server.Pprof && runtime.MemProfileRate == 0 {
			// Heap profiles cover what is allocated from now on.
			runtime.MemProfileRate = defaultMemProfileRate
		}
		d.hist = admin.NewHistograms()
		srv := admin.New(admin.Config{Listen: addr, AuthToken: cfg.Server.AuthToken.Value(), Logger: log, Histograms: d.hist, Pprof: cfg.Server.Pprof},
			admin.SourceFunc(d.adminMappings))
		bound, err := srv.Start(ctx)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		log.Info("serving /metrics, /healthz, /readyz and /mappings", "listen", bound)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	if err := d.apply(cfg); err != nil {
		d.stopAll()
		return err
	}
	if len(d.mappings) == 0 {
		log.Warn("no enabled mappings: waiting for a reload (SIGHUP) or a signal to stop")
	}

	hup, stopHup := notifyReload()
	defer stopHup()
	var watch <-chan time.Time
	var lastMod time.Time
	if watchConfig && configPath != "" {
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		watch = t.C
		lastMod = modTime(configPath)
	}
	var failed []error
	// esmd exits once every mapping has stopped on its own (finished or
	// failed), after a drain, or after a hard stop; mappings a reload
	// removed keep it waiting for the next reload.
	stopping, ranOut := false, false
	hard := ctx.Done()
	for {
		if len(d.snapshot()) == 0 && (stopping || ranOut) {
			break
		}
		select {
		case <-d.exited:
			for _, a := range d.snapshot() {
				select {
				case <-a.done:
					d.forget(a)
					if a.err != nil && !errors.Is(a.err, context.Canceled) {
						failed = append(failed, a.err)
					}
					ranOut = true
				default:
				}
			}
		case <-drain:
			drain = nil
			log.Info("draining: finishing in-flight batches and saving checkpoints")
			d.stopAll()
			watch, hup, stopping = nil, nil, true
		case <-hup:
			d.reload("SIGHUP")
		case <-watch:
			if m := modTime(configPath); !m.Equal(lastMod) {
				lastMod = m
				d.reload("file changed")
			}
		case <-hard:
			// Runners stop on their own; wait for them.
			drain, hup, watch, hard, stopping = nil, nil, nil, nil, true
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(failed...)
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// reload loads the configuration file again and applies it.
func (d *daemonState) reload(why string) {
	if configPath == "" {
		return
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				d.log.Error("reload refused: invalid configuration; the running one stays", "problem", e.Error())
			}
		} else {
			d.log.Error("reload refused: the running configuration stays", "err", err)
		}
		return
	}
	d.log.Info("reloading configuration", "reason", why, "config", configPath)
	if err := d.apply(cfg); err != nil {
		d.log.Error("reload failed for some mappings", "err", err)
	}
}

// fingerprint identifies a mapping's effective settings together with its
// function's definition.
func fingerprint(s config.Settings, f config.Function) string {
	b, _ := json.Marshal(struct {
		S config.Settings
		F config.Function
	}{s, f})
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

// apply makes the running mappings match cfg.
func (d *daemonState) apply(cfg *config.Config) error {
	if d.cfg != nil {
		d.warnStatic(cfg)
	}
	want := map[string]config.Settings{}
	var order []string
	for i := range cfg.Mappings {
		s := cfg.Mappings[i].Settings()
		if !s.Enabled {
			d.log.Info("mapping disabled", "mapping", s.Name)
			continue
		}
		want[s.Name] = s
		order = append(order, s.Name)
	}
	// Stop what was removed or changed, all at once.
	var stopping []*active
	for name, a := range d.mappings {
		s, ok := want[name]
		if ok && a.fingerprint == fingerprint(s, cfg.Functions[s.Function]) {
			continue
		}
		if ok {
			d.log.Info("mapping changed: draining it to apply the new settings", "mapping", name)
		} else {
			d.log.Info("mapping removed or disabled: draining it", "mapping", name)
		}
		stopping = append(stopping, a)
	}
	d.drainEach(stopping)
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	if d.cps == nil && needsStore(cfg) {
		path := "esmd-state/checkpoints.db"
		if cfg.Checkpoints.File != nil && cfg.Checkpoints.File.Path != "" {
			path = cfg.Checkpoints.File.Path
		}
		store, err := checkpoint.OpenFile(path, checkpoint.WithLogger(d.log))
		if err != nil {
			return err
		}
		d.closers = append(d.closers, store.Close)
		d.cps = store
	}
	var errs []error
	for _, name := range order {
		if _, running := d.mappings[name]; running {
			continue
		}
		if err := d.start(want[name]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// warnStatic logs the changes a reload cannot apply.
func (d *daemonState) warnStatic(cfg *config.Config) {
	same := func(a, b any) bool {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return string(x) == string(y)
	}
	for _, c := range []struct {
		name string
		a, b any
	}{
		{"aws", d.base.AWS, cfg.AWS},
		{"checkpoints", d.base.Checkpoints, cfg.Checkpoints},
		{"server", d.base.Server, cfg.Server},
		{"logging", d.base.Logging, cfg.Logging},
	} {
		if !same(c.a, c.b) {
			d.log.Warn("this section changed but applies only after a restart", "section", c.name)
		}
	}
}

func needsStore(cfg *config.Config) bool {
	for i := range cfg.Mappings {
		s := cfg.Mappings[i].Settings()
		if s.Enabled && s.Source.IsStream() {
			return true
		}
	}
	return false
}

// start builds and runs the runner of one mapping.
func (d *daemonState) start(s config.Settings) error {
	cfg := d.cfg
	fn := cfg.Functions[s.Function]
	mlog := d.log.With("mapping", s.Name)
	fp := fingerprint(config.Settings{Name: s.Function}, fn)
	inv, ok := d.invokers[fp]
	if !ok {
		var closer io.Closer
		var err error
		inv, closer, err = newFunction(s.Function, fn, cfg, d.log)
		if err != nil {
			return fmt.Errorf("mapping %s: %w", s.Name, err)
		}
		d.closers = append(d.closers, closer.Close)
		d.invokers[fp] = inv
	}
	a := &active{settings: s, fingerprint: fingerprint(s, fn), done: make(chan struct{}),
		started: time.Now(), functionARN: functionARN(s, cfg)}
	if s.Source.Kind == config.SourceSQS {
		r, err := newSQSRunner(s, cfg, inv, d.cl, d.log)
		if err != nil {
			return err
		}
		a.r, a.sqs = r, r
	} else {
		var dest mapping.Destination
		if s.OnFailure != nil {
			target := s.OnFailure.ARN
			if target == "" {
				target = s.OnFailure.URL
			}
			var err error
			dest, err = destinations.New(d.ctx, target, destinations.Deps{SQS: d.cl.SQS(), SNS: d.cl.SNS(), S3: d.cl.S3(), Logger: mlog})
			if err != nil {
				return fmt.Errorf("mapping %s: on-failure destination: %w", s.Name, err)
			}
			if c, ok := dest.(interface{ Close() error }); ok {
				d.closers = append(d.closers, c.Close)
			}
		}
		src, kind, err := newSource(s, d.cl, mlog)
		if err != nil {
			return fmt.Errorf("mapping %s: %w", s.Name, err)
		}
		deps := mapping.Deps{Source: src, Invoker: inv, Destination: dest, Checkpointer: d.cps, Logger: d.log}
		if d.hist != nil {
			deps.Observer = d.hist.For(s.Name, s.UUID, string(kind))
		}
		mc := engineConfig(s, kind, cfg)
		mc.Retention = retention(d.ctx, src, mlog)
		r, err := mapping.NewRunner(mc, deps)
		if err != nil {
			return err
		}
		a.r, a.stream = r, r
	}
	d.mu.Lock()
	d.mappings[s.Name] = a
	d.mu.Unlock()
	go func() {
		a.err = a.r.Run(d.ctx)
		close(a.done)
		select {
		case d.exited <- struct{}{}:
		default: // a signal is already pending
		}
	}()
	return nil
}

// forget removes an exited mapping.
func (d *daemonState) forget(a *active) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mappings[a.settings.Name] == a {
		delete(d.mappings, a.settings.Name)
	}
}

// drainEach drains the given mappings concurrently and waits until each has
// stopped.
func (d *daemonState) drainEach(list []*active) {
	var wg sync.WaitGroup
	for _, a := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = a.r.Drain(d.ctx)
			<-a.done
		}()
	}
	wg.Wait()
	for _, a := range list {
		d.forget(a)
	}
}

// stopAll starts draining every mapping; runDaemon collects them as they
// exit.
func (d *daemonState) stopAll() {
	d.mu.Lock()
	list := make([]*active, 0, len(d.mappings))
	for _, a := range d.mappings {
		list = append(list, a)
	}
	d.mu.Unlock()
	for _, a := range list {
		go func() { _ = a.r.Drain(d.ctx) }()
	}
}

func (d *daemonState) closeAll() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		_ = d.closers[i]()
	}
}

// adminMappings describes the running mappings, and the disabled ones of
// the current configuration, for the admin server. It is called from the
// server's goroutines.
func (d *daemonState) adminMappings() []admin.Mapping {
	var out []admin.Mapping
	for _, a := range d.snapshot() {
		var m admin.Mapping
		if a.sqs != nil {
			m = admin.ForSQSRunner(a.sqs, a.settings, a.functionARN)
		} else {
			m = admin.ForRunner(a.stream, a.settings)
		}
		m.LastModified = a.started
		out = append(out, m)
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if cfg != nil {
		for i := range cfg.Mappings {
			if s := cfg.Mappings[i].Settings(); !s.Enabled {
				out = append(out, admin.ForDisabled(s, functionARN(s, cfg)))
			}
		}
	}
	return out
}

// snapshot lists the running mappings by name; it is safe to call from any
// goroutine.
func (d *daemonState) snapshot() []*active {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*active, 0, len(d.mappings))
	for _, a := range d.mappings {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].settings.Name < out[j].settings.Name })
	return out
}

// retention asks a stream source how long its stream keeps records, so that
// the engine gives up a failing batch once its records have left the
// stream, as Lambda does. It is 0, with a warning, when the source cannot
// say.
func retention(ctx context.Context, src mapping.Source, log *slog.Logger) time.Duration {
	rs, ok := src.(interface {
		Retention(context.Context) (time.Duration, error)
	})
	if !ok {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := rs.Retention(ctx)
	if err != nil {
		log.Warn("could not read the stream's retention period; a failing batch is retried until "+
			"MaximumRecordAgeInSeconds or MaximumRetryAttempts ends it", "err", err)
		return 0
	}
	return d
}
