package codepkg

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestCheckBootstrap(t *testing.T) {
	exe := func(name string) zent { return zent{name: name, body: "#!/usr/bin/python3\n", mode: 0o755} }
	tests := []struct {
		name    string
		ents    []zent
		mention string // "" means accepted
	}{
		{"an executable bootstrap at the root is accepted", []zent{exe("bootstrap"), file("lib.py", "")}, ""},
		{"an executable bootstrap with only its owner's execute bit is accepted", []zent{{name: "bootstrap", body: "x", mode: 0o700}}, ""},
		{"a package without a bootstrap is refused", []zent{file("main.py", "")}, `needs an executable file named "bootstrap"`},
		{"a bootstrap below the root does not count", []zent{exe("bin/bootstrap")}, `needs an executable file named "bootstrap"`},
		{"a bootstrap that is not executable is refused", []zent{file("bootstrap", "x")}, "not executable"},
		{"a bootstrap that is a directory is refused", []zent{dir("bootstrap/"), file("bootstrap/x", "")}, "is a directory"},
		{"a bootstrap that is a symlink is refused", []zent{exe("app"), {name: "bootstrap", body: "app", mode: fs.ModeSymlink | 0o777}}, "is a symlink"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBootstrap(mkzip(t, tc.ents...))
			if tc.mention == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want ErrInvalidPackage mentioning %q", err, tc.mention)
			}
		})
	}
}
