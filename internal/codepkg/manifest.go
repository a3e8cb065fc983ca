package codepkg

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// Manifest file names, in the order LoadManifest looks for them.
var manifestNames = []string{"nimbus.yaml", "nimbus.yml"}

// Defaults and bounds of a FunctionConfig (docs/spec.md §2).
const (
	DefaultHandler  = "main.handler"
	DefaultMemoryMB = 128
	DefaultTimeout  = 3 * time.Second

	MinMemoryMB = 128
	MaxMemoryMB = 10240
	MinTimeout  = time.Second
	MaxTimeout  = 900 * time.Second
	MaxEnvBytes = 4096 // sum of len(key)+len(value) over all variables

	MaxRetries = 2
	// MaxReservedConcurrency bounds a function's reserved concurrency.
	MaxReservedConcurrency = 10000
	// MaxProvisioned bounds a function's provisioned instances.
	MaxProvisioned = 100
	MinRetryDelay  = time.Second
	MaxRetryDelay  = time.Hour
	MinEventAge    = time.Minute
	MaxEventAge    = 6 * time.Hour

	DefaultEphemeralMB = 512
	MinEphemeralMB     = 512
	MaxEphemeralMB     = 10240
)

var (
	nameRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	runtimeRe = regexp.MustCompile(`^python3\.[0-9]{1,3}$`)
	layerRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	handlerRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)
	envKeyRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// manifestFields are the keys a manifest may hold.
var manifestFields = []string{"name", "runtime", "handler", "memory", "timeout", "env", "description", "ephemeral_storage",
	"retries", "retry_delay", "max_event_age", "destinations", "reserved_concurrency", "provisioned", "layers"}

// LoadManifest reads dir/nimbus.yaml, or else dir/nimbus.yml, with
// ParseManifest. found reports whether either file exists; when neither
// does it returns a zero config, false and no error. Having both is an
// error, since which one counts would be a guess.
func LoadManifest(dir string) (cfg client.FunctionConfig, found bool, err error) {
	var have []string
	for _, n := range manifestNames {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			have = append(have, n)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return cfg, false, err
		}
	}
	switch len(have) {
	case 0:
		return cfg, false, nil
	case 2:
		return cfg, true, fmt.Errorf("%w: both %s and %s exist in %s; keep one", ErrInvalidConfig, have[0], have[1], dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, have[0]))
	if err != nil {
		return cfg, true, err
	}
	cfg, err = ParseManifest(b)
	if err != nil {
		return cfg, true, fmt.Errorf("%s: %w", have[0], err)
	}
	return cfg, true, nil
}

// ParseManifest decodes a nimbus.yaml. It checks syntax, types and field
// names only (unknown fields are an error naming them), not ranges: flags
// may still override fields, so call ValidateConfig on the final config.
// timeout is a Go duration ("3s", "1m30s") or a number of seconds; memory
// is a whole number of MB. Empty input gives a zero config. Errors wrap
// ErrInvalidConfig.
func ParseManifest(b []byte) (client.FunctionConfig, error) {
	var cfg client.FunctionConfig
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cfg, nil // empty document
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return cfg, nil
	}
	if top.Kind != yaml.MappingNode {
		return cfg, fmt.Errorf("%w: manifest must be a mapping of fields (%s)", ErrInvalidConfig, strings.Join(manifestFields, ", "))
	}
	var unknown []string
	seen := map[string]int{} // field -> line
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, line := top.Content[i].Value, top.Content[i].Line
		if !slices.Contains(manifestFields, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
		if first, dup := seen[k]; dup {
			return cfg, fmt.Errorf("%w: field %q on line %d is already defined on line %d", ErrInvalidConfig, k, line, first)
		}
		seen[k] = line
	}
	if len(unknown) > 0 {
		return cfg, fmt.Errorf("%w: unknown field(s) %s; known fields are %s", ErrInvalidConfig, strings.Join(unknown, ", "), strings.Join(manifestFields, ", "))
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		var err error
		switch k {
		case "name":
			err = v.Decode(&cfg.Name)
		case "runtime":
			err = v.Decode(&cfg.Runtime)
		case "handler":
			err = v.Decode(&cfg.Handler)
		case "memory":
			err = v.Decode(&cfg.MemoryMB)
		case "timeout":
			var d time.Duration
			d, err = parseTimeout(v)
			cfg.Timeout = client.Duration(d)
		case "env":
			err = v.Decode(&cfg.Env)
		case "description":
			err = v.Decode(&cfg.Description)
		case "ephemeral_storage":
			err = v.Decode(&cfg.EphemeralMB)
		case "retries":
			var n int
			if err = v.Decode(&n); err == nil {
				cfg.Retries = &n
			}
		case "provisioned":
			err = v.Decode(&cfg.Provisioned)
		case "reserved_concurrency":
			var n int
			if err = v.Decode(&n); err == nil {
				cfg.ReservedConcurrency = &n
			}
		case "retry_delay":
			var d time.Duration
			d, err = parseTimeout(v)
			cfg.RetryDelay = client.Duration(d)
		case "max_event_age":
			var d time.Duration
			d, err = parseTimeout(v)
			cfg.MaxEventAge = client.Duration(d)
		case "layers":
			err = v.Decode(&cfg.Layers)
		case "destinations":
			var d struct {
				OnSuccess string `yaml:"on_success"`
				OnFailure string `yaml:"on_failure"`
			}
			if err = v.Decode(&d); err == nil {
				cfg.Destinations = &client.Destinations{OnSuccess: d.OnSuccess, OnFailure: d.OnFailure}
			}
		}
		if err != nil {
			return client.FunctionConfig{}, fmt.Errorf("%w: field %q (line %d): %v", ErrInvalidConfig, k, v.Line, yamlMsg(err))
		}
	}
	return cfg, nil
}

// yamlMsg strips yaml.v3's "unmarshal errors:" wrapping down to its lines.
func yamlMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}

// parseTimeout reads "3s"-style durations and plain numbers of seconds.
func parseTimeout(n *yaml.Node) (time.Duration, error) {
	if n.Kind == 0 || n.Tag == "!!null" {
		return 0, nil
	}
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%q is not a duration like \"3s\" or a number of seconds", n.Value)
	}
	if n.Kind != yaml.ScalarNode {
		return bad()
	}
	if d, err := time.ParseDuration(n.Value); err == nil {
		return d, nil
	}
	secs, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
		return bad()
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// ValidateConfig checks a final config (manifest plus flags): name matches
// ^[a-z][a-z0-9-]{0,62}$ and is required; runtime is "", python3.X or
// provided (ValidRuntime); handler is "" or module.function (module may be
// dotted), or for provided 1-128 printable characters; memory is 0
// (default) or 128..10240 MB; timeout is 0 (default) or 1s..900s; env keys
// match ^[A-Za-z_][A-Za-z0-9_]*$ and keys plus values total at most 4096
// bytes. It reports every problem at once, in one error wrapping
// ErrInvalidConfig.
func ValidateConfig(c model.FunctionConfig) error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	switch {
	case c.Name == "":
		add("name is required")
	case !nameRe.MatchString(c.Name):
		add("name %q must be 1-63 characters of a-z, 0-9 and '-', starting with a letter", c.Name)
	}
	if c.Runtime != "" && !ValidRuntime(c.Runtime) {
		add("runtime %q must be of the form python3.X, e.g. python3.11, or provided", c.Runtime)
	}
	switch {
	case c.Handler == "":
	case IsProvided(c.Runtime):
		if !providedHandlerRe.MatchString(c.Handler) {
			add("handler %q must be 1-128 printable characters (the bootstrap reads it from _HANDLER)", c.Handler)
		}
	case !handlerRe.MatchString(c.Handler):
		add("handler %q must be module.function, e.g. main.handler or pkg.mod.handler", c.Handler)
	}
	if c.MemoryMB != 0 && (c.MemoryMB < MinMemoryMB || c.MemoryMB > MaxMemoryMB) {
		add("memory %d MB is outside %d..%d MB", c.MemoryMB, MinMemoryMB, MaxMemoryMB)
	}
	if c.EphemeralMB != 0 && (c.EphemeralMB < MinEphemeralMB || c.EphemeralMB > MaxEphemeralMB) {
		add("ephemeral_storage %d MB is outside %d..%d MB", c.EphemeralMB, MinEphemeralMB, MaxEphemeralMB)
	}
	if c.ReservedConcurrency != nil && (*c.ReservedConcurrency < 0 || *c.ReservedConcurrency > MaxReservedConcurrency) {
		add("reserved_concurrency %d is outside 0..%d", *c.ReservedConcurrency, MaxReservedConcurrency)
	}
	if c.Provisioned < 0 || c.Provisioned > MaxProvisioned {
		add("provisioned %d is outside 0..%d", c.Provisioned, MaxProvisioned)
	} else if c.ReservedConcurrency != nil && c.Provisioned > *c.ReservedConcurrency {
		add("provisioned %d is more than reserved_concurrency %d", c.Provisioned, *c.ReservedConcurrency)
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > MaxRetries) {
		add("retries %d is outside 0..%d", *c.Retries, MaxRetries)
	}
	if d := time.Duration(c.RetryDelay); d != 0 && (d < MinRetryDelay || d > MaxRetryDelay) {
		add("retry_delay %v is outside %v..%v", d, MinRetryDelay, MaxRetryDelay)
	}
	if d := time.Duration(c.MaxEventAge); d != 0 && (d < MinEventAge || d > MaxEventAge) {
		add("max_event_age %v is outside %v..%v", d, MinEventAge, MaxEventAge)
	}
	if c.Destinations != nil {
		for _, d := range []struct{ field, v string }{{"on_success", c.Destinations.OnSuccess}, {"on_failure", c.Destinations.OnFailure}} {
			if msg := checkDestination(d.v); msg != "" {
				add("destinations.%s %q %s", d.field, d.v, msg)
			}
		}
	}
	if t := time.Duration(c.Timeout); t != 0 && (t < MinTimeout || t > MaxTimeout) {
		add("timeout %v is outside %v..%v", t, MinTimeout, MaxTimeout)
	}
	keys := make([]string, 0, len(c.Env))
	size := 0
	for k, v := range c.Env {
		keys = append(keys, k)
		size += len(k) + len(v)
	}
	slices.Sort(keys) // stable messages
	for _, k := range keys {
		if !envKeyRe.MatchString(k) {
			add("env key %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
	}
	names := map[string]bool{}
	if len(c.Layers) > model.MaxLayers {
		add("layers: %d given; a function mounts at most %d", len(c.Layers), model.MaxLayers)
	}
	for _, l := range c.Layers {
		name, version, err := ParseLayerRef(l)
		if err != nil {
			add("layers: %v", err)
			continue
		}
		if names[name] {
			add("layers: layer %q is named twice (%s)", name, l)
		}
		names[name] = version > 0
	}
	if size > MaxEnvBytes {
		add("env totals %d bytes (keys plus values), over the limit of %d", size, MaxEnvBytes)
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(probs, "; "))
	}
	return nil
}

// ApplyDefaults fills the zero fields that have a default: handler
// main.handler, memory 128 MB, timeout 3s, ephemeral storage 512 MB. Runtime is left as is (the
// worker picks the newest Python it has), except that an alias of the
// provided runtime becomes its name (CanonicalRuntime); name, env and
// description have no default.
func ApplyDefaults(c *model.FunctionConfig) {
	c.Runtime = CanonicalRuntime(c.Runtime)
	if c.Handler == "" {
		c.Handler = DefaultHandler
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.Timeout == 0 {
		c.Timeout = model.Duration(DefaultTimeout)
	}
	if c.EphemeralMB == 0 {
		c.EphemeralMB = DefaultEphemeralMB
	}
}

// checkDestination returns why d is not a destination ("" if it is):
// an http(s) URL with a host, or function:NAME.
func checkDestination(d string) string {
	if d == "" {
		return ""
	}
	if ref, ok := strings.CutPrefix(d, "function:"); ok {
		name, qual := model.SplitQualifier(ref)
		if !nameRe.MatchString(name) {
			return "names no valid function (function:NAME[:VERSION|:ALIAS])"
		}
		if _, err := model.ParseQualifier(qual); err != nil {
			return "names no valid function: " + err.Error()
		}
		return ""
	}
	u, err := url.Parse(d)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "is neither an http(s) URL nor function:NAME"
	}
	return ""
}

// ParseLayerRef reads NAME:VERSION, a published layer's version.
func ParseLayerRef(ref string) (name string, version int64, err error) {
	name, v, ok := strings.Cut(ref, ":")
	if !ok {
		return "", 0, fmt.Errorf("%q is not NAME:VERSION (a layer's name and version number, as nimbus layers ls shows them)", ref)
	}
	if !layerRe.MatchString(name) {
		return "", 0, fmt.Errorf("layer name %q must be 1-64 characters of letters, digits, '-' and '_'", name)
	}
	version, err = strconv.ParseInt(v, 10, 64)
	if err != nil || version < 1 {
		return "", 0, fmt.Errorf("layer version %q in %q must be a number from 1", v, ref)
	}
	return name, version, nil
}

// ValidLayerName reports whether name is a layer's name.
func ValidLayerName(name string) bool { return layerRe.MatchString(name) }

// ValidRuntime reports whether name has a runtime's form: python3.X, or
// the provided runtime (or an alias of it).
func ValidRuntime(name string) bool { return runtimeRe.MatchString(name) || IsProvided(name) }
