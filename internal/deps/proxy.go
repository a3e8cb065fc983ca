package deps

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// indexProxy is the only way out of a build sandbox that may build
// source distributions: an HTTP proxy on a Unix socket (mounted into the
// sandbox, where the build relays a loopback port to it) that reaches
// the index's hosts and nothing else. It serves CONNECT (https) and
// absolute-URI requests (http), one request per connection.
type indexProxy struct {
	ln    net.Listener
	hosts map[string]bool // host:port allowed
	wg    sync.WaitGroup

	mu      sync.Mutex
	refused []string // what was asked for and refused
}

// newIndexProxy listens on the Unix socket path and allows the hosts of
// the index's URLs (and its trusted hosts on 80 and 443).
func newIndexProxy(path string, ix Index) (*indexProxy, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	p := &indexProxy{ln: ln, hosts: map[string]bool{}}
	for _, raw := range append(append([]string{ix.URL}, ix.ExtraURLs...), ix.FindLinks...) {
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			p.hosts[hostPort(u.Host, u.Scheme)] = true
		}
	}
	for _, h := range ix.TrustedHosts {
		p.hosts[hostPort(h, "http")] = true
		p.hosts[hostPort(h, "https")] = true
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return strings.ToLower(host)
	}
	if scheme == "https" {
		return strings.ToLower(host) + ":443"
	}
	return strings.ToLower(host) + ":80"
}

func (p *indexProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// handle serves one connection's request.
func (p *indexProxy) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	target := req.Host
	if req.Method != http.MethodConnect {
		target = hostPort(req.URL.Host, req.URL.Scheme)
	} else {
		target = hostPort(target, "https")
	}
	if !p.hosts[target] {
		p.mu.Lock()
		p.refused = append(p.refused, target)
		p.mu.Unlock()
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", target, 30*time.Second)
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	defer up.Close()
	if req.Method == http.MethodConnect {
		fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	} else {
		req.RequestURI = ""
		req.Header.Del("Proxy-Connection")
		req.Header.Set("Connection", "close")
		req.Close = true
		if err := req.Write(up); err != nil {
			return
		}
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, br) // what the client buffered, then the rest
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}

// close stops the proxy and waits for its connections to end.
func (p *indexProxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

// refusedHosts lists the hosts the build asked for and was refused.
func (p *indexProxy) refusedHosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...)
}
