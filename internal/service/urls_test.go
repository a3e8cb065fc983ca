package service

import (
	"context"
	"errors"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestABadFunctionURLIsRefusedWithASentenceAndTheStoredOneStays(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Deps{})
	stored(t, s, "default", "f")
	good := model.FunctionURL{Function: "f", Auth: model.URLAuthNone, CORS: &model.CORS{AllowOrigins: []string{"https://app.example"}, MaxAge: 60}}
	if _, created, err := s.PutFunctionURL(ctx, "default", good); err != nil || !created {
		t.Fatalf("a good URL: created %v, %v", created, err)
	}
	cors := func(c model.CORS) model.FunctionURL { return model.FunctionURL{Function: "f", CORS: &c} }
	cases := []struct {
		name string
		url  model.FunctionURL
		kind error
	}{
		{"an unknown auth mode", model.FunctionURL{Function: "f", Auth: "iam"}, state.ErrInvalid},
		{"a negative rate limit", model.FunctionURL{Function: "f", RateLimit: -1}, state.ErrInvalid},
		{"CORS without an origin", cors(model.CORS{AllowMethods: []string{"GET"}}), state.ErrInvalid},
		{"an origin with a path", cors(model.CORS{AllowOrigins: []string{"https://app.example/x"}}), state.ErrInvalid},
		{"an origin without a scheme", cors(model.CORS{AllowOrigins: []string{"app.example"}}), state.ErrInvalid},
		{"an unknown method", cors(model.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"FETCH"}}), state.ErrInvalid},
		{"a header name with a space", cors(model.CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"x bad"}}), state.ErrInvalid},
		{"a max age over a day", cors(model.CORS{AllowOrigins: []string{"*"}, MaxAge: 86401}), state.ErrInvalid},
		{"credentials for every origin", cors(model.CORS{AllowOrigins: []string{"*"}, AllowCredentials: true}), state.ErrInvalid},
		{"a function that does not exist", model.FunctionURL{Function: "nope"}, state.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := s.PutFunctionURL(ctx, "default", c.url)
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			got, err := s.FunctionURL("default", "f")
			if err != nil || got.Auth != model.URLAuthNone || got.CORS == nil || got.CORS.AllowOrigins[0] != "https://app.example" {
				t.Fatalf("the stored URL changed: %+v %v", got, err)
			}
		})
	}
}

func TestAFunctionURLIsKeyAuthenticatedUnlessToldOtherwise(t *testing.T) {
	s, _ := newService(t, Deps{})
	stored(t, s, "default", "f")
	u, _, err := s.PutFunctionURL(context.Background(), "default", model.FunctionURL{Function: "f"})
	if err != nil || u.Auth != model.URLAuthKey {
		t.Fatalf("got %+v %v", u, err)
	}
}
