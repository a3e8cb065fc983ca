package fsm

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestAFunctionURLNeedsItsFunctionAndKeepsItsCreationTimeWhenReplaced(t *testing.T) {
	f, s := newFSM()
	u := model.FunctionURL{Function: "hello", Auth: model.URLAuthNone}
	res := apply(t, f, PutFunctionURLType, PutFunctionURL{URL: u, Now: t0})
	if err, ok := res.(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a URL for a missing function: want ErrNotFound, got %v", res)
	}
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	r1 := apply(t, f, PutFunctionURLType, PutFunctionURL{URL: u, Now: t0}).(PutFunctionURLResult)
	if !r1.Created || r1.URL.Namespace != "default" || !r1.URL.CreatedAt.Equal(t0) {
		t.Fatalf("first put: %+v", r1)
	}
	u.Auth = model.URLAuthKey
	r2 := apply(t, f, PutFunctionURLType, PutFunctionURL{URL: u, Now: t0.Add(time.Hour)}).(PutFunctionURLResult)
	if r2.Created || !r2.URL.CreatedAt.Equal(t0) || !r2.URL.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second put: %+v", r2)
	}
	if got, err := s.FunctionURL("default/hello"); err != nil || got.Auth != model.URLAuthKey {
		t.Fatalf("stored: %+v %v", got, err)
	}
	b, _ := json.Marshal(r2)
	if got, err := DecodeResult(PutFunctionURLType, b); err != nil || got.(PutFunctionURLResult).URL.Auth != model.URLAuthKey {
		t.Fatalf("forwarded result: %+v %v", got, err)
	}
	apply(t, f, DeleteFunctionURLType, DeleteFunctionURL{Name: "hello"})
	if _, err := s.FunctionURL("default/hello"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.Function("default/hello"); err != nil {
		t.Fatalf("deleting the URL removed the function: %v", err)
	}
}

func TestRemovingAFunctionRemovesItsURLInTheSameEntry(t *testing.T) {
	for _, remove := range []struct {
		name string
		ct   CommandType
		cmd  any
	}{
		{"remove", RemoveFunctionType, RemoveFunction{Name: "hello"}},
		{"delete", DeleteFunctionType, DeleteFunction{Name: "hello"}},
	} {
		t.Run(remove.name, func(t *testing.T) {
			f, s := newFSM()
			apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
			apply(t, f, PutFunctionURLType, PutFunctionURL{URL: model.FunctionURL{Function: "hello", Auth: model.URLAuthNone}, Now: t0})
			apply(t, f, remove.ct, remove.cmd)
			if _, err := s.FunctionURL("default/hello"); !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("the URL outlived its function: %v", err)
			}
			// A function deployed again under the name has no URL.
			apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "bb"), Now: t0})
			if len(s.FunctionURLs("")) != 0 {
				t.Fatal("a new function inherited the old one's URL")
			}
		})
	}
}

func TestFunctionURLsSurviveASnapshot(t *testing.T) {
	f, _ := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	cors := &model.CORS{AllowOrigins: []string{"https://app.example"}, MaxAge: 60}
	apply(t, f, PutFunctionURLType, PutFunctionURL{URL: model.FunctionURL{Function: "hello", Auth: model.URLAuthNone, CORS: cors}, Now: t0})
	_, s2 := restored(t, f)
	got, err := s2.FunctionURL("default/hello")
	if err != nil || got.CORS == nil || got.CORS.MaxAge != 60 || got.Auth != model.URLAuthNone {
		t.Fatalf("restored: %+v %v", got, err)
	}
}
