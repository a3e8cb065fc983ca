package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/sigv4"
)

// TestSigV4SecretIsPinned pins the derivation: the CLI computes the
// secret from the token and the server from the stored hash, so a change
// breaks every configured client. The expected value was computed apart,
// with Python's hmac.
func TestSigV4SecretIsPinned(t *testing.T) {
	token := "nimbus_0123456789ab_" + strings.Repeat("a", 64)
	const want = "TA9eqTuDcnq37RGl+4EhpbYqe3iGsAuSpupCgtxC"
	if got := SigV4Secret(hashSecret(strings.Repeat("a", 64))); got != want {
		t.Fatalf("SigV4Secret = %q, want %q", got, want)
	}
	id, secret, err := SigV4SecretOfToken(token)
	if err != nil || id != "0123456789ab" || secret != want {
		t.Fatalf("SigV4SecretOfToken = %q, %q, %v", id, secret, err)
	}
}

func TestSigV4Secret(t *testing.T) {
	a, b := SigV4Secret(hashSecret("one secret")), SigV4Secret(hashSecret("another secret"))
	if len(a) != 40 {
		t.Errorf("secret %q is %d characters, want 40 like AWS's", a, len(a))
	}
	if a == b {
		t.Error("two keys have one SigV4 secret")
	}
	if SigV4Secret("not hex") != "" || SigV4Secret("") != "" {
		t.Error("a hash that is not hex has a SigV4 secret")
	}
	if _, _, err := SigV4SecretOfToken("nimbus_short"); err == nil {
		t.Error("a malformed token has credentials")
	}
}

// signedWith is a ListFunctions request signed as of now with the AWS
// credentials the CLI would compute from token.
func signedWith(t *testing.T, token string, now time.Time) *http.Request {
	t.Helper()
	id, secret, err := SigV4SecretOfToken(token)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://127.0.0.1:8080/2015-03-31/functions/?MaxItems=2", nil)
	if err := sigv4.Sign(r, nil, id, secret, "us-east-1", SigV4Service, now); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckSigV4(t *testing.T) {
	ctx := context.Background()
	store, cp := newStore(t)
	now := time.Now()
	token, key, err := CreateKeyWith(ctx, cp, KeyOptions{Role: RoleDeveloper, Namespace: "team"})
	if err != nil {
		t.Fatal(err)
	}
	expiredToken, _, err := CreateKeyWith(ctx, cp, KeyOptions{Role: RoleAdmin, ExpiresAt: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	deletedToken, deleted, err := CreateKeyWith(ctx, cp, KeyOptions{Role: RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.Apply(ctx, cp, fsm.DeleteKey{ID: deleted.ID}); err != nil {
		t.Fatal(err)
	}

	got, err := CheckSigV4(store, signedWith(t, token, now), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != key.ID || got.Role != RoleDeveloper || got.Namespace != "team" {
		t.Fatalf("key %+v, want %+v", got, key)
	}

	id, _, _ := ParseToken(token)
	bearerSigned := httptest.NewRequest("GET", "http://127.0.0.1:8080/2015-03-31/functions/", nil)
	_, rawSecret, _ := ParseToken(token)
	sigv4.Sign(bearerSigned, nil, id, rawSecret, "us-east-1", SigV4Service, now)
	unsigned := httptest.NewRequest("GET", "http://127.0.0.1:8080/2015-03-31/functions/", nil)
	unsigned.Header.Set("Authorization", "Bearer "+token)
	for _, c := range []struct {
		name string
		r    *http.Request
		want error
	}{
		{"an expired key is refused as unknown", signedWith(t, expiredToken, now), sigv4.ErrUnknownKey},
		{"a deleted key is unknown", signedWith(t, deletedToken, now), sigv4.ErrUnknownKey},
		{"a token that was never a key is unknown", signedWith(t, NewToken(), now), sigv4.ErrUnknownKey},
		{"a request signed with the bearer secret itself is refused", bearerSigned, sigv4.ErrSignature},
		{"a bearer request is not SigV4", unsigned, sigv4.ErrMissing},
		{"a request signed an hour ago has expired", signedWith(t, token, now.Add(-time.Hour)), sigv4.ErrExpired},
	} {
		if _, err := CheckSigV4(store, c.r, nil, now); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
}
