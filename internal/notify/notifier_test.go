package notify

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// smtpServer is a minimal SMTP server on 127.0.0.1 that hands each
// message's DATA to msgs.
func smtpServer(t *testing.T) (string, chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	msgs := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				say := func(s string) { io.WriteString(c, s+"\r\n") }
				say("220 test ESMTP")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						say("250 test")
					case strings.HasPrefix(cmd, "DATA"):
						say("354 go on")
						var b strings.Builder
						for {
							l, err := r.ReadString('\n')
							if err != nil || l == ".\r\n" {
								break
							}
							b.WriteString(l)
						}
						msgs <- b.String()
						say("250 queued")
					case strings.HasPrefix(cmd, "QUIT"):
						say("221 bye")
						return
					default:
						say("250 ok")
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String(), msgs
}

func TestNotifierSendsWebhooksAndMailForMatchingConditions(t *testing.T) {
	hooks := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if Verify("k", r.Header.Get(SignatureHeader), body) {
			hooks <- string(body)
		}
	}))
	defer srv.Close()
	addr, mails := smtpServer(t)
	subs := []model.Subscription{
		{ID: "s-hook", Function: "f", On: []string{OnFailure}, Webhook: srv.URL},
		{ID: "s-mail", On: []string{OnTimeout}, Email: "ops@example.test"},
	}
	n := NewNotifier(func() []model.Subscription { return subs }, func(string) string { return "k" },
		SMTP{Addr: addr, From: "nimbus@example.test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for !n.active.Load() && time.Now().Before(deadline) {
		<-time.After(time.Millisecond)
	}

	n.Observe(model.Invocation{ID: "ok", Function: "f", Status: model.StatusSuccess}) // no subscription
	n.Observe(model.Invocation{ID: "q", Function: "f", Status: model.StatusQueued})   // not an end
	n.Observe(model.Invocation{ID: "t", Function: "f", Status: model.StatusFailed, ErrorType: "Sandbox.Timeout"})

	select {
	case body := <-hooks:
		if !strings.Contains(body, `"condition":"failure"`) || !strings.Contains(body, `"id":"t"`) {
			t.Fatalf("webhook body: %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook for the failed invocation")
	}
	select {
	case msg := <-mails:
		if !strings.Contains(msg, "Subject: [nimbus] f timeout: t") || !strings.Contains(msg, "To: ops@example.test") {
			t.Fatalf("mail: %s", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail for the timed-out invocation")
	}
	select {
	case body := <-hooks:
		t.Fatalf("an unsubscribed condition was notified: %s", body)
	default:
	}
}

func TestANotifierThatDoesNotLeadIgnoresChanges(t *testing.T) {
	n := NewNotifier(func() []model.Subscription { return nil }, func(string) string { return "" }, SMTP{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := 0; i < 10000; i++ {
		n.Observe(model.Invocation{ID: "x", Status: model.StatusSuccess})
	}
	if len(n.ch) != 0 {
		t.Fatalf("a notifier that is not running queued %d changes", len(n.ch))
	}
}
