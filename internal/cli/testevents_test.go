package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testEventsAPI answers the test-event routes of function hello with
// one saved event, and notes each request with its body.
type testEventsAPI struct {
	mu   sync.Mutex
	seen []string
}

func (f *testEventsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path+" "+string(body))
	f.mu.Unlock()
	one := `{"namespace":"default","function":"hello","name":"order","event":{"id":1},"updated_at":"2026-12-01T12:00:00Z","updated_by":"user:ada"}`
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/functions/hello/test-events":
		io.WriteString(w, `{"test_events":[`+one+`]}`)
	case "GET /v1/functions/hello/test-events/order", "PUT /v1/functions/hello/test-events/order":
		io.WriteString(w, one)
	case "DELETE /v1/functions/hello/test-events/order":
		w.WriteHeader(http.StatusNoContent)
	default:
		apiError(w, 404, "NotFound", "no route "+r.Method+" "+r.URL.Path)
	}
}

func TestTestEventsCommands(t *testing.T) {
	f := &testEventsAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	env := against(srv.URL)
	file := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(file, []byte(`{"from":"file"}`), 0o644)

	if r := runCLI(t, env, "", "test-events", "ls", "hello"); r.code != 0 || !strings.Contains(r.stdout, "order") || !strings.Contains(r.stdout, "user:ada") {
		t.Fatalf("ls: %+v", r)
	}
	if r := runCLI(t, env, "", "test-events", "get", "hello", "order"); r.code != 0 || r.stdout != "{\n  \"id\": 1\n}\n" {
		t.Fatalf("get: %+v", r)
	}
	if r := runCLI(t, env, "", "test-events", "save", "hello", "order", "--data", `{"id":2}`); r.code != 0 || r.stdout != "test event order of hello saved\n" {
		t.Fatalf("save --data: %+v", r)
	}
	if r := runCLI(t, env, "", "test-events", "save", "hello", "order", "--file", file); r.code != 0 {
		t.Fatalf("save --file: %+v", r)
	}
	if r := runCLI(t, env, "", "test-events", "rm", "hello", "order"); r.code != 0 || r.stdout != "test event order of hello removed\n" {
		t.Fatalf("rm: %+v", r)
	}
	want := []string{
		"GET /v1/functions/hello/test-events ",
		"GET /v1/functions/hello/test-events/order ",
		`PUT /v1/functions/hello/test-events/order {"id":2}`,
		`PUT /v1/functions/hello/test-events/order {"from":"file"}`,
		"DELETE /v1/functions/hello/test-events/order ",
	}
	if strings.Join(f.seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(f.seen, "\n"), strings.Join(want, "\n"))
	}

	for _, bad := range [][]string{
		{"save", "hello", "order"},
		{"save", "hello", "order", "--data", "{}", "--file", file},
		{"save", "hello", "order", "--data", "{not json"},
		{"get", "hello"},
	} {
		if r := runCLI(t, env, "", append([]string{"test-events"}, bad...)...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", bad, r.code, ExitUsage, r.stderr)
		}
	}
	if r := runCLI(t, env, "", "test-events", "get", "nope", "order"); r.code != ExitPlatform || !strings.Contains(r.stderr, "404") {
		t.Errorf("an unknown function: %+v", r)
	}
}
