package codepkg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want client.FunctionConfig
	}{
		{"the spec example parses", `
name: hello               # ^[a-z][a-z0-9-]{0,62}$
runtime: python3.11
handler: main.handler
memory: 128
timeout: 3s
env: {GREETING: hi}
description: says hello
`, client.FunctionConfig{Name: "hello", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128,
			Timeout: client.Duration(3 * time.Second), Env: map[string]string{"GREETING": "hi"}, Description: "says hello"}},
		{"a timeout may be a whole number of seconds", "timeout: 30", client.FunctionConfig{Timeout: client.Duration(30 * time.Second)}},
		{"a timeout may be a fraction of seconds", "timeout: 1.5", client.FunctionConfig{Timeout: client.Duration(1500 * time.Millisecond)}},
		{"a timeout may be a quoted number", `timeout: "90"`, client.FunctionConfig{Timeout: client.Duration(90 * time.Second)}},
		{"a timeout may be a compound duration", "timeout: 1m30s", client.FunctionConfig{Timeout: client.Duration(90 * time.Second)}},
		{"env values that look like numbers stay strings", "env: {N: 3, B: true}", client.FunctionConfig{Env: map[string]string{"N": "3", "B": "true"}}},
		{"an empty manifest is a zero config", "", client.FunctionConfig{}},
		{"a manifest of comments only is a zero config", "# nothing\n", client.FunctionConfig{}},
		{"an explicit null timeout is no timeout", "timeout: ~", client.FunctionConfig{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseManifest([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseManifestRefusesBadManifests(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		mention string
	}{
		{"unknown fields are named", "name: x\nmemroy: 128\nfoo: 1\n", `unknown field(s) "memroy", "foo"`},
		{"a memory that is not a number is refused", "memory: lots", "lots"},
		{"a memory with a unit is refused", "memory: 128MB", "128MB"},
		{"a timeout that is not a duration is refused", "timeout: soon", `field "timeout" (line 1): "soon" is not a duration`},
		{"a timeout that is a list is refused", "timeout: [1]", "timeout"},
		{"env that is not a map is refused", "env: [A, B]", "env"},
		{"a list at the top is refused", "- name: x\n", "must be a mapping"},
		{"a scalar at the top is refused", "hello", "must be a mapping"},
		{"a duplicate key is refused", "name: a\nname: b\n", "already defined"},
		{"broken YAML is refused", "name: [unclosed\n", "yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.yaml))
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want ErrInvalidConfig mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestLoadManifest(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		wantName  string
		wantFound bool
		wantErr   string // "" for no error
	}{
		{"no manifest is not an error", map[string]string{"main.py": ""}, "", false, ""},
		{"nimbus.yaml is read", map[string]string{"nimbus.yaml": "name: a"}, "a", true, ""},
		{"nimbus.yml is read", map[string]string{"nimbus.yml": "name: b"}, "b", true, ""},
		{"both spellings at once are refused", map[string]string{"nimbus.yaml": "name: a", "nimbus.yml": "name: b"}, "", true, "both"},
		{"errors name the file", map[string]string{"nimbus.yml": "nmae: a"}, "", true, "nimbus.yml: invalid function config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			cfg, found, err := LoadManifest(dir)
			if found != tc.wantFound {
				t.Errorf("found = %v, want %v", found, tc.wantFound)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidConfig mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || cfg.Name != tc.wantName {
				t.Fatalf("cfg.Name = %q, err = %v; want %q", cfg.Name, err, tc.wantName)
			}
		})
	}
}

func TestLoadManifestReportsUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "nimbus.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, found, err := LoadManifest(dir); err == nil || !found {
		t.Fatalf("found = %v, err = %v; want found and an error", found, err)
	}
}

func TestValidateConfig(t *testing.T) {
	ok := model.FunctionConfig{Name: "hello"}
	with := func(f func(c *model.FunctionConfig)) model.FunctionConfig {
		c := ok
		f(&c)
		return c
	}
	bigEnv := map[string]string{"K": strings.Repeat("v", MaxEnvBytes-1)}
	tooBigEnv := map[string]string{"K": strings.Repeat("v", MaxEnvBytes-1), "L": ""}
	tests := []struct {
		name    string
		cfg     model.FunctionConfig
		mention string // "" means valid
	}{
		{"a bare name is valid", ok, ""},
		{"a full config is valid", model.FunctionConfig{Name: "a-1", Runtime: "python3.12", Handler: "pkg.mod.fn",
			MemoryMB: 10240, Timeout: model.Duration(900 * time.Second), Env: map[string]string{"_X1": "y"}}, ""},
		{"the smallest memory and timeout are valid", with(func(c *model.FunctionConfig) {
			c.MemoryMB, c.Timeout = 128, model.Duration(time.Second)
		}), ""},
		{"env of exactly 4 KB is valid", with(func(c *model.FunctionConfig) { c.Env = bigEnv }), ""},
		{"a 63-character name is valid", with(func(c *model.FunctionConfig) { c.Name = "a" + strings.Repeat("b", 62) }), ""},
		{"a destination naming an alias is valid", with(func(c *model.FunctionConfig) {
			c.Destinations = &model.Destinations{OnSuccess: "function:audit:live", OnFailure: "function:audit:3"}
		}), ""},
		{"a destination with a malformed qualifier is refused", with(func(c *model.FunctionConfig) {
			c.Destinations = &model.Destinations{OnFailure: "function:audit:a.b"}
		}), "neither $LATEST"},

		{"the provided runtime is valid", with(func(c *model.FunctionConfig) { c.Runtime = "provided" }), ""},
		{"a provided runtime's alias is valid", with(func(c *model.FunctionConfig) { c.Runtime = "provided.al2023" }), ""},
		{"a provided function's handler is free-form", with(func(c *model.FunctionConfig) {
			c.Runtime, c.Handler = "provided.al2", "bin/app --mode fast"
		}), ""},
		{"a provided function's handler has no control characters", with(func(c *model.FunctionConfig) {
			c.Runtime, c.Handler = "provided", "a\nb"
		}), "1-128 printable characters"},
		{"another provided name is refused", with(func(c *model.FunctionConfig) { c.Runtime = "provided.al1" }), `runtime "provided.al1"`},

		{"a missing name is refused", model.FunctionConfig{}, "name is required"},
		{"a 64-character name is refused", with(func(c *model.FunctionConfig) { c.Name = "a" + strings.Repeat("b", 63) }), "name"},
		{"a name with capitals is refused", with(func(c *model.FunctionConfig) { c.Name = "Hello" }), `name "Hello"`},
		{"a name starting with a digit is refused", with(func(c *model.FunctionConfig) { c.Name = "1x" }), `name "1x"`},
		{"a runtime that is not python3.X is refused", with(func(c *model.FunctionConfig) { c.Runtime = "node18" }), `runtime "node18"`},
		{"a handler without a function is refused", with(func(c *model.FunctionConfig) { c.Handler = "main" }), `handler "main"`},
		{"a handler with a path is refused", with(func(c *model.FunctionConfig) { c.Handler = "dir/main.handler" }), "handler"},
		{"a handler with an empty part is refused", with(func(c *model.FunctionConfig) { c.Handler = "main..handler" }), "handler"},
		{"memory below 128 MB is refused", with(func(c *model.FunctionConfig) { c.MemoryMB = 64 }), "memory 64 MB is outside 128..10240 MB"},
		{"memory above 10240 MB is refused", with(func(c *model.FunctionConfig) { c.MemoryMB = 10241 }), "memory 10241 MB"},
		{"negative memory is refused", with(func(c *model.FunctionConfig) { c.MemoryMB = -1 }), "memory -1 MB"},
		{"a sub-second timeout is refused", with(func(c *model.FunctionConfig) { c.Timeout = model.Duration(500 * time.Millisecond) }), "timeout 500ms is outside 1s..15m0s"},
		{"a timeout over 900s is refused", with(func(c *model.FunctionConfig) { c.Timeout = model.Duration(901 * time.Second) }), "timeout 15m1s"},
		{"a bad env key is refused", with(func(c *model.FunctionConfig) { c.Env = map[string]string{"A-B": "x"} }), `env key "A-B"`},
		{"an env key starting with a digit is refused", with(func(c *model.FunctionConfig) { c.Env = map[string]string{"1A": "x"} }), `env key "1A"`},
		{"env over 4 KB is refused", with(func(c *model.FunctionConfig) { c.Env = tooBigEnv }), "env totals 4097 bytes"},
		{"every problem is reported at once", model.FunctionConfig{Name: "X", MemoryMB: 1}, `name "X" must be`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateConfig(tc.cfg)
			if tc.mention == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want ErrInvalidConfig mentioning %q", err, tc.mention)
			}
		})
	}
	if err := ValidateConfig(model.FunctionConfig{Name: "X", MemoryMB: 1}); !strings.Contains(fmt.Sprint(err), "memory 1 MB") {
		t.Errorf("err = %v, want the memory problem reported too", err)
	}
}

func TestApplyDefaults(t *testing.T) {
	c := model.FunctionConfig{Name: "x", Runtime: "python3.11"}
	ApplyDefaults(&c)
	want := model.FunctionConfig{Name: "x", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128, Timeout: model.Duration(3 * time.Second), EphemeralMB: 512}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	set := model.FunctionConfig{Handler: "a.b", MemoryMB: 512, Timeout: model.Duration(time.Minute), EphemeralMB: 1024}
	c = set
	ApplyDefaults(&c)
	if !reflect.DeepEqual(c, set) {
		t.Errorf("ApplyDefaults changed set fields: %+v", c)
	}
	if err := ValidateConfig(want); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	for _, alias := range []string{"provided", "provided.al2", "provided.al2023"} {
		c := model.FunctionConfig{Name: "x", Runtime: alias}
		if ApplyDefaults(&c); c.Runtime != ProvidedRuntime {
			t.Errorf("runtime %s is stored as %s, want %s", alias, c.Runtime, ProvidedRuntime)
		}
	}
}
