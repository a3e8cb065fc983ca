package benchmark

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nimbus/internal/pywheel"
)

// The heavy dependency set (issue 17): a generated package of
// heavyModules modules that do what real libraries do as they are
// imported (enums, dataclasses, compiled patterns, tables, class
// hierarchies), imported by its __init__ with the standard library
// modules such libraries pull in.
const (
	heavyPackage = "nimbus_heavy"
	heavyVersion = "1.0"
	heavyModules = 220
)

// heavyStdlib are the standard library modules the package imports.
var heavyStdlib = []string{"asyncio", "email.message", "email.parser", "decimal", "json", "http.client", "xml.etree.ElementTree", "sqlite3",
	"dataclasses", "enum", "re", "typing", "collections", "functools", "logging", "datetime", "uuid"}

// heavyWheel builds the package as a wheel.
func heavyWheel() pywheel.Wheel {
	files := map[string]string{}
	var init strings.Builder
	init.WriteString("\"\"\"A generated package whose import costs what real ones do.\"\"\"\n")
	for _, m := range heavyStdlib {
		fmt.Fprintf(&init, "import %s\n", m)
	}
	for i := range heavyModules {
		fmt.Fprintf(&init, "from . import m%03d\n", i)
		files[fmt.Sprintf("%s/m%03d.py", heavyPackage, i)] = heavyModule(i)
	}
	fmt.Fprintf(&init, "VERSION = %q\n", heavyVersion)
	files[heavyPackage+"/__init__.py"] = init.String()
	return pywheel.Wheel{Name: heavyPackage, Version: heavyVersion, Files: files}
}

// heavyModule is module i: an enum, two dataclasses, a small class
// hierarchy, patterns compiled at import and a lookup table.
func heavyModule(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `"""Generated module %[1]d."""
import dataclasses
import enum
import re
import typing


class Kind%[1]d(enum.Enum):
`, i)
	for k := range 12 {
		fmt.Fprintf(&b, "    K%d = %d\n", k, k)
	}
	fmt.Fprintf(&b, `

@dataclasses.dataclass(frozen=True)
class Key%[1]d:
    name: str
    kind: Kind%[1]d = Kind%[1]d.K0
    weight: float = 1.0


@dataclasses.dataclass
class Record%[1]d:
    key: Key%[1]d
    values: typing.List[int] = dataclasses.field(default_factory=list)
    tags: typing.Dict[str, str] = dataclasses.field(default_factory=dict)
    note: typing.Optional[str] = None

    def total(self) -> int:
        return sum(self.values) + %[1]d


class Base%[1]d:
    registry: typing.ClassVar[dict] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        Base%[1]d.registry[cls.__name__] = cls

`, i)
	for k := range 6 {
		fmt.Fprintf(&b, "class Sub%d_%d(Base%d):\n    level = %d\n\n", i, k, i, k)
	}
	fmt.Fprintf(&b, "\nPATTERNS = [\n")
	for k := range 6 {
		fmt.Fprintf(&b, "    re.compile(r\"^(?P<head>[a-z]{%d,%d})-(?P<num>\\d+)(?:\\.(?P<ext>m%d_%d))?$\"),\n", k+1, k+3, i, k)
	}
	fmt.Fprintf(&b, "]\n\nTABLE = {n: (n * %d + 7) %% 101 for n in range(400)}\n", i+3)
	fmt.Fprintf(&b, "DEFAULTS = tuple(Key%d(name='k%%d' %% n, kind=Kind%d(n %% 12)) for n in range(24))\n", i, i)
	return b.String()
}

// heavyFiles lays the package out in dir, as a layer would hold it, and
// returns dir (the baseline imports it from there).
func heavyFiles(dir string) error {
	for path, content := range heavyWheel().Files {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// heavyImportCode is what the baseline runs with -c: dir on sys.path,
// then the package imported.
func heavyImportCode(dir string) string {
	return fmt.Sprintf("import sys; sys.path.insert(0, %q); import %s", dir, heavyPackage)
}

// heavyZip is a function package that imports the heavy set, with the
// requirements.txt that names it. tag makes each package its own.
func heavyZip(tag string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range map[string]string{
		"main.py":          fmt.Sprintf("# %s\nimport %s\n\ndef handler(e, c):\n    return %s.VERSION\n", tag, heavyPackage, heavyPackage),
		"requirements.txt": fmt.Sprintf("%s==%s\n", heavyPackage, heavyVersion),
	} {
		w, err := zw.Create(name)
		if err != nil {
			return nil, err
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DepsResult adds issue 17's keys: a cold invoke of a function whose
// dependencies are heavy against importing them in a bare interpreter,
// and cold starts of many new functions at once against starting
// Python. Only a run that starts its own node measures them (its
// dependency builds need the generated package on a local find-links
// directory, and the burst a node that no other traffic warmed).
type DepsResult struct {
	PythonHeavyImportP50MS float64 `json:"python_heavy_import_p50_ms"`
	ColdHeavyP50MS         float64 `json:"cold_heavy_p50_ms"`
	ColdHeavyRatio         float64 `json:"cold_heavy_ratio"`
	ColdBurstP50MS         float64 `json:"cold_burst_p50_ms"`
	ColdBurstP99MS         float64 `json:"cold_burst_p99_ms"`
	ColdBurstRatio         float64 `json:"cold_burst_ratio"`
}

// HeavyGoal is issue 17's target for cold_heavy_ratio.
const HeavyGoal = 0.5

// heavyIndex writes the heavy package's wheel into a new directory, the
// --pip-find-links of the node the run starts, and unpacks it beside it
// for the baseline; remove removes both.
func heavyIndex() (links, src string, remove func(), err error) {
	tmp, err := os.MkdirTemp("", "nimbus-bench-heavy")
	if err != nil {
		return "", "", nil, err
	}
	remove = func() { os.RemoveAll(tmp) }
	links, src = filepath.Join(tmp, "wheels"), filepath.Join(tmp, "src")
	w := heavyWheel()
	if err = os.MkdirAll(links, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(links, w.Filename()), w.Bytes(), 0o644)
	}
	if err == nil {
		err = heavyFiles(src)
	}
	if err != nil {
		remove()
		return "", "", nil, err
	}
	return links, src, remove, nil
}

// runHeavy deploys sz.heavy functions that import the heavy package
// (the first deploy builds its layer, the others reuse it), then
// invokes each once, cold, after importing the package in a bare
// interpreter twice (baseline samples).
func runHeavy(ctx context.Context, a *api, rep *Report, sz sizes, prefix, src string, deployed *[]string) error {
	names := make([]string, sz.heavy)
	for i := range names {
		names[i] = fmt.Sprintf("%s-h%d", prefix, i)
		code, err := heavyZip(names[i])
		if err != nil {
			return err
		}
		if _, err := a.deployZip(ctx, names[i], code); err != nil {
			return err
		}
		*deployed = append(*deployed, names[i])
	}
	code := heavyImportCode(src)
	baseline := func() (time.Duration, error) { return pythonRun(rep.Interpreter, code) }
	for range 2 { // the first writes the sources' bytecode
		if _, err := baseline(); err != nil {
			return err
		}
	}
	cold, py, err := coldBesideBaseline(ctx, a, rep, names, 2, baseline)
	if err != nil {
		return err
	}
	if rep.DepsResult == nil {
		rep.DepsResult = &DepsResult{}
	}
	rep.PythonHeavyImportP50MS, rep.ColdHeavyP50MS = percentileMS(py, 50), percentileMS(cold, 50)
	return nil
}

// burstSize is the number of never-run functions invoked at once.
const burstSize = 20

// BurstGoal is issue 17's target for cold_burst_ratio.
const BurstGoal = 1.0

// runBurst deploys burstSize no-op functions, then invokes them all at
// once, each a cold start, and sets the burst keys.
func runBurst(ctx context.Context, a *api, rep *Report, prefix string, deployed *[]string) error {
	names := make([]string, burstSize)
	for i := range names {
		names[i] = fmt.Sprintf("%s-b%d", prefix, i)
		if _, err := a.deploy(ctx, names[i]); err != nil {
			return err
		}
		*deployed = append(*deployed, names[i])
	}
	type answer struct {
		d    time.Duration
		cold bool
		err  error
	}
	answers := make(chan answer, len(names))
	start := make(chan struct{})
	for _, name := range names {
		go func() {
			<-start
			d, cold, err := a.invoke(ctx, name)
			answers <- answer{d, cold, err}
		}()
	}
	close(start)
	var ds []time.Duration
	var errs []error
	for range names {
		an := <-answers
		if an.err != nil {
			errs = append(errs, an.err)
			continue
		}
		if !an.cold {
			rep.NotCold++
		}
		ds = append(ds, an.d)
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if rep.DepsResult == nil {
		rep.DepsResult = &DepsResult{}
	}
	rep.ColdBurstP50MS, rep.ColdBurstP99MS = percentileMS(ds, 50), percentileMS(ds, 99)
	return nil
}
