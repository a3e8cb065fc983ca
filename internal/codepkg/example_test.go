package codepkg_test

import (
	"errors"
	"fmt"

	"nimbus/internal/codepkg"
	"nimbus/internal/wire"
)

func ExampleParseManifest() {
	cfg, err := codepkg.ParseManifest([]byte("name: hello\ntimeout: 10\n"))
	if err != nil {
		panic(err)
	}
	stored := wire.ModelFunctionConfig(cfg) // what the server validates
	codepkg.ApplyDefaults(&stored)
	fmt.Println(stored.Name, stored.Handler, stored.MemoryMB, codepkg.ValidateConfig(stored))

	_, err = codepkg.ParseManifest([]byte("name: hello\nmemroy: 256\n"))
	fmt.Println(errors.Is(err, codepkg.ErrInvalidConfig))
	// Output:
	// hello main.handler 128 <nil>
	// true
}
