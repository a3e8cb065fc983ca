package state

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// scaleFunction is a function as a deploy stores it, with a realistic
// configuration.
func scaleFunction(i int) model.Function {
	retries := 2
	return model.Function{
		FunctionConfig: model.FunctionConfig{Name: fmt.Sprintf("fn-%06d", i), Runtime: "python3.11", Handler: "main.handler", MemoryMB: 256,
			Timeout: model.Duration(30e9), Env: map[string]string{"STAGE": "prod", "TABLE": fmt.Sprintf("orders-%d", i)},
			Description: "handles the orders of one shop", Retries: &retries, Source: "build-host:/srv/app/functions/orders"},
		Namespace: fmt.Sprintf("team-%d", i%20), CodeSHA256: fmt.Sprintf("%064x", i), CodeSize: 2345,
	}
}

// BenchmarkDeployInto measures a deploy into a store that holds n
// functions already (the view is published after each), and reports the
// heap the n functions take, per function.
func BenchmarkDeployInto(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("%d functions", n), func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s := New()
			for i := range n {
				if _, _, err := s.UpsertFunction(scaleFunction(i), t0); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ResetTimer()
			for i := range b.N {
				s.UpsertFunction(scaleFunction(i%n), t0)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/function")
		})
	}
}

func TestFunctionsAreListedByQualifiedName(t *testing.T) {
	s := New()
	// "a-b/x" sorts before "a/x": '-' is below '/'.
	for _, f := range []model.Function{
		{FunctionConfig: model.FunctionConfig{Name: "x"}, Namespace: "a"},
		{FunctionConfig: model.FunctionConfig{Name: "y"}, Namespace: "a-b"},
		{FunctionConfig: model.FunctionConfig{Name: "b"}, Namespace: "a"},
		{FunctionConfig: model.FunctionConfig{Name: "z"}, Namespace: "a0"},
	} {
		if _, _, err := s.UpsertFunction(f, t0); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, f := range s.Functions("") {
		got = append(got, f.QualifiedName())
	}
	want := []string{"a-b/y", "a/b", "a/x", "a0/z"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if got := s.Functions("a"); len(got) != 2 || got[0].Name != "b" || got[1].Name != "x" {
		t.Fatalf("namespace a lists %v", got)
	}
}

// BenchmarkListFunctions is the list GET /v1/functions makes of a
// namespace's functions.
func BenchmarkListFunctions(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("%d functions", n), func(b *testing.B) {
			s := New()
			for i := range n {
				f := scaleFunction(i)
				f.Namespace = "default"
				if _, _, err := s.UpsertFunction(f, t0); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if len(s.Functions("default")) != n {
					b.Fatal("short list")
				}
			}
		})
	}
}

func TestFunctionsAfterPagesThroughTheList(t *testing.T) {
	s := New()
	for i := range 250 {
		f := scaleFunction(i)
		f.Namespace = []string{"a", "a-b"}[i%2]
		if _, _, err := s.UpsertFunction(f, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"a", "a-b", ""} {
		for _, n := range []int{1, 7, 100, 125, 1000} {
			var got []string
			after, pages := "", 0
			for {
				page, more := s.FunctionsAfter(ns, after, n)
				pages++
				for _, f := range page {
					got = append(got, f.QualifiedName())
				}
				if !more {
					break
				}
				if len(page) != n {
					t.Fatalf("ns %q, n %d: a page of %d before the last", ns, n, len(page))
				}
				after = page[len(page)-1].Name
				if ns == "" {
					after = page[len(page)-1].QualifiedName()
				}
			}
			var want []string
			for _, f := range s.Functions(ns) {
				want = append(want, f.QualifiedName())
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("ns %q, pages of %d: listed %d functions in %d pages, not the %d of Functions in order", ns, n, len(got), pages, len(want))
			}
		}
	}
}

// BenchmarkFunctionsPage is a page of 100 of 100,000 functions, as
// GET /v1/functions?limit=100 asks for.
func BenchmarkFunctionsPage(b *testing.B) {
	s := New()
	for i := range 100000 {
		f := scaleFunction(i)
		f.Namespace = "default"
		if _, _, err := s.UpsertFunction(f, t0); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if page, more := s.FunctionsAfter("default", "fn-050000", 100); len(page) != 100 || !more {
			b.Fatal("short page")
		}
	}
}

// The names in order (nameOrder) follow functions added, removed,
// deployed again and restored: every page and list equals a sort of the
// functions stored.
func TestFunctionListsFollowEveryChange(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	s := New()
	stored := map[string]bool{}
	var (
		saved       *bytes.Buffer
		savedStored map[string]bool
	)
	for step := range 3000 {
		ns := []string{"a", "a-b", "b"}[rnd.IntN(3)]
		f := scaleFunction(rnd.IntN(400))
		f.Namespace = ns
		qn := f.QualifiedName()
		switch k := rnd.IntN(10); {
		case k < 6:
			if _, _, err := s.UpsertFunction(f, t0); err != nil {
				t.Fatal(err)
			}
			stored[qn] = true
		case k < 9:
			if stored[qn] {
				if err := s.DeleteFunction(qn); err != nil {
					t.Fatal(err)
				}
				delete(stored, qn)
			}
		case saved == nil:
			saved, savedStored = &bytes.Buffer{}, maps.Clone(stored)
			if _, err := s.Capture().WriteTo(saved); err != nil {
				t.Fatal(err)
			}
		default: // the store goes back to the snapshot taken earlier
			if err := s.Restore(saved); err != nil {
				t.Fatal(err)
			}
			saved, stored = nil, savedStored
		}
		if step%7 != 0 {
			continue // let changes gather between reads
		}
		for _, ns := range []string{"a", "a-b", "b", ""} {
			var want []string
			for qn := range stored {
				if ns == "" || strings.HasPrefix(qn, ns+"/") {
					want = append(want, qn)
				}
			}
			slices.Sort(want)
			var got []string
			for _, f := range s.Functions(ns) {
				got = append(got, f.QualifiedName())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("step %d, namespace %q: listed %v, want %v", step, ns, got, want)
			}
			if len(want) < 2 {
				continue
			}
			at := rnd.IntN(len(want) - 1)
			after := want[at]
			if ns != "" {
				after = strings.TrimPrefix(after, ns+"/")
			}
			page, more := s.FunctionsAfter(ns, after, 5)
			end := min(at+1+5, len(want))
			if len(page) != end-at-1 || more != (end < len(want)) {
				t.Fatalf("step %d, namespace %q after %q: %d functions (more %v), want %d (more %v)", step, ns, after, len(page), more, end-at-1, end < len(want))
			}
			for i, f := range page {
				if f.QualifiedName() != want[at+1+i] {
					t.Fatalf("step %d, namespace %q after %q: %s at %d, want %s", step, ns, after, f.QualifiedName(), i, want[at+1+i])
				}
			}
		}
	}
}

// A page of functions reads the published view, not under the store's
// lock: it answers while a writer holds the lock (as one does while a
// Raft snapshot's capture makes it wait).
func TestAFunctionsPageDoesNotWaitForTheStoresLock(t *testing.T) {
	s := New()
	for i := range 150 {
		if _, _, err := s.UpsertFunction(scaleFunction(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(chan int)
	go func() {
		page, _ := s.FunctionsAfter("", "", 100)
		all := s.Functions("")
		done <- len(page) + len(all)
	}()
	select {
	case n := <-done:
		if n != 250 {
			t.Errorf("a page of 100 and the list of 150 returned %d functions in all", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a page of functions waited for the store's lock")
	}
}

// Pages taken while functions are added and removed at the same time
// (the order made again from scratch now and then, when a quarter of it
// changed) never lose a function: once the writers stop, paging through
// lists exactly the functions stored.
func TestPagesDuringWritesLoseNoFunction(t *testing.T) {
	s := New()
	stop := make(chan struct{})
	readers := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { readers <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := ""
				for {
					page, more := s.FunctionsAfter("", after, 100)
					if !more || len(page) == 0 {
						break
					}
					after = page[len(page)-1].QualifiedName()
				}
			}
		}()
	}
	stored := map[string]bool{}
	rnd := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		f := scaleFunction(rnd.IntN(3000))
		qn := f.QualifiedName()
		if stored[qn] && rnd.IntN(3) == 0 {
			if err := s.DeleteFunction(qn); err != nil {
				t.Fatal(err)
			}
			delete(stored, qn)
			continue
		}
		if _, _, err := s.UpsertFunction(f, t0); err != nil {
			t.Fatal(err)
		}
		stored[qn] = true
	}
	close(stop)
	<-readers
	<-readers
	var listed []string
	after := ""
	for {
		page, more := s.FunctionsAfter("", after, 100)
		for _, f := range page {
			listed = append(listed, f.QualifiedName())
		}
		if !more {
			break
		}
		after = page[len(page)-1].QualifiedName()
	}
	want := slices.Sorted(maps.Keys(stored))
	if !slices.Equal(listed, want) {
		t.Errorf("paged %d functions, want the %d stored", len(listed), len(want))
	}
}

// The provisioning loop's list holds the functions that ask for
// provisioned instances, and only those.
func TestProvisionedFunctionsAreThoseThatAsk(t *testing.T) {
	s := New()
	for i := range 300 {
		fn := scaleFunction(i)
		if i%100 == 7 {
			fn.Provisioned = i
		}
		if _, _, err := s.UpsertFunction(fn, t0); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, fn := range s.ProvisionedFunctions() {
		got = append(got, fmt.Sprintf("%s=%d", fn.Name, fn.Provisioned))
	}
	slices.Sort(got)
	if want := []string{"fn-000007=7", "fn-000107=107", "fn-000207=207"}; !slices.Equal(got, want) {
		t.Fatalf("provisioned functions %v, want %v", got, want)
	}
}
