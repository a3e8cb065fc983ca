package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSlowClientsDoNotHoldTheServer opens connections that trickle their
// headers or their body (slow loris) and checks that the server closes
// each of them by itself, keeps answering others meanwhile, and stores
// nothing of the half-sent deploys.
func TestSlowClientsDoNotHoldTheServer(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0", "--header-timeout", "2s", "--body-timeout", "2s")
	host := strings.TrimPrefix(n.url, "http://")
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 0 {
			// Headers that never end.
			fmt.Fprintf(c, "GET /v1/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n", n.token)
		} else {
			// A deploy whose body never comes (a few bytes of 100 KB).
			fmt.Fprintf(c, "PUT /v1/functions/slow-%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"config\":", i, n.token)
		}
		conns = append(conns, c)
	}
	if status, _, b := n.do("GET", "/v1/functions", "", nil); status != 200 {
		t.Fatalf("the server stopped answering with slow clients connected: %d %s", status, b)
	}
	// The bound is generous: the test fails only if the server never
	// closes the connections.
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("slow connection %d was not closed by the server: %v (read %q)", i, err, b)
		}
		// A body that stops coming is the client's timeout, said so.
		if i%2 == 1 && !strings.HasPrefix(string(b), "HTTP/1.1 408 ") {
			t.Errorf("slow body %d was answered %q, want 408 Request Timeout", i, b)
		}
	}
	_, _, b := n.do("GET", "/v1/functions", "", nil)
	if strings.Contains(string(b), "slow-") {
		t.Errorf("a half-sent deploy stored a function: %s", b)
	}
}
