package deps

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// buildFromIndex is a build that may build source distributions: pip
// resolves, fetches, builds and installs the requirements all inside
// the sandbox, whose only way out is the index proxy (a source build
// runs the package's own code, so nothing of it runs on the server).
// Local --find-links directories are mounted read-only at
// /opt/links/N.
func (b *Builder) buildFromIndex(ctx context.Context, rt python.Runtime, pip, tmp string, reqs []string, log io.Writer) (Layer, error) {
	if b.Executor == nil {
		return Layer{}, fmt.Errorf("%w: source distributions are built only in a sandbox, and this node runs without one", ErrCannotBuild)
	}
	// A Unix socket's path is at most 107 bytes: the proxy's goes in a
	// short directory of the system's temporary one.
	proxyDir, err := os.MkdirTemp("", "nimbus-proxy-")
	if err != nil {
		return Layer{}, err
	}
	defer os.RemoveAll(proxyDir)
	reqDir := filepath.Join(tmp, "req")
	for _, d := range []string{proxyDir, reqDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Layer{}, err
		}
		if err := os.Chmod(d, 0o755); err != nil { // the sandbox's own uid enters them
			return Layer{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(reqDir, "requirements.txt"), []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		return Layer{}, err
	}
	sock := filepath.Join(proxyDir, "index.sock")
	proxy, err := newIndexProxy(sock, b.Index)
	if err != nil {
		return Layer{}, err
	}
	defer proxy.close()
	if err := os.Chmod(sock, 0o666); err != nil {
		return Layer{}, err
	}
	mounts := []sandbox.Mount{{Source: proxyDir, Target: "/opt/proxy"}}
	ix := b.Index
	ix.FindLinks = nil
	for i, f := range b.Index.FindLinks {
		if u, err := url.Parse(f); err == nil && u.Scheme != "" && u.Scheme != "file" {
			ix.FindLinks = append(ix.FindLinks, f)
			continue
		}
		target := fmt.Sprintf("/opt/links/%d", i)
		mounts = append(mounts, sandbox.Mount{Source: f, Target: target})
		ix.FindLinks = append(ix.FindLinks, target)
	}
	fmt.Fprintf(log, "nimbus: resolving, fetching and building for %s in a sandbox that reaches only the index (source distributions allowed)\n", rt.Name)
	l, err := b.install(ctx, rt, pip, tmp, reqDir, mounts, func(root string) []string {
		return append([]string{"index", "/opt/proxy/index.sock", path.Join(root, "requirements.txt")}, ix.args()...)
	}, log)
	for _, h := range proxy.refusedHosts() {
		fmt.Fprintf(log, "nimbus: the build asked for %s, which is not the index: refused\n", h)
	}
	if err != nil {
		return Layer{}, err
	}
	if l.Packages, err = installedPackages(l.Zip); err != nil {
		return Layer{}, err
	}
	sum := sha256.Sum256(l.Zip)
	l.Key = "built:" + hex.EncodeToString(sum[:])
	return l, nil
}

// installedPackages lists NAME==VERSION of the distributions a layer
// holds, from its .dist-info directories.
func installedPackages(b []byte) ([]string, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range zr.File {
		top, _, _ := strings.Cut(f.Name, "/")
		if strings.HasSuffix(top, ".dist-info") {
			if name, version, ok := strings.Cut(strings.TrimSuffix(top, ".dist-info"), "-"); ok {
				seen[name+"=="+version] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
