package codepkg_test

import (
	"errors"
	"fmt"

	"nimbus/internal/codepkg"
)

func ExampleParseManifest() {
	cfg, err := codepkg.ParseManifest([]byte("name: hello\ntimeout: 10\n"))
	if err != nil {
		panic(err)
	}
	codepkg.ApplyDefaults(&cfg)
	fmt.Println(cfg.Name, cfg.Handler, cfg.MemoryMB, codepkg.ValidateConfig(cfg))

	_, err = codepkg.ParseManifest([]byte("name: hello\nmemroy: 256\n"))
	fmt.Println(errors.Is(err, codepkg.ErrInvalidConfig))
	// Output:
	// hello main.handler 128 <nil>
	// true
}
