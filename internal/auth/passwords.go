package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id's cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// PasswordParams are the parameters new password hashes get: OWASP's
// argon2id recommendation (19 MiB, 2 passes, 1 lane). Stored hashes carry
// their own, so these can rise without invalidating old passwords.
var PasswordParams = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	hashLen = 32
	// maxMemory bounds what a stored hash may ask of the verifier (1 GiB).
	maxMemory = 1 << 20
)

// hashing bounds the argon2id computations that run at once, so a burst
// of logins costs at most this many times the memory parameter.
var hashing = make(chan struct{}, 4)

func idKey(password, salt []byte, p Argon2Params, n uint32) []byte {
	hashing <- struct{}{}
	defer func() { <-hashing }()
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, n)
}

var b64 = base64.RawStdEncoding

// HashPassword returns the argon2id hash of password in PHC string form,
// $argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>, with a random salt.
func HashPassword(password string) string {
	return hashWith(password, PasswordParams)
}

func hashWith(password string, p Argon2Params) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	sum := idKey([]byte(password), salt, p, hashLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// errBadHash is returned for a stored hash that is not argon2id PHC.
var errBadHash = errors.New("not an argon2id PHC string")

// parseHash reads a PHC string back into its parameters, salt and hash.
func parseHash(phc string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory || p.Time < 1 || p.Time > 64 || p.Threads < 1 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := b64.DecodeString(parts[4])
	sum, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(sum) < 16 || len(sum) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, sum, nil
}

// VerifyPassword reports whether password matches the PHC hash phc,
// comparing in constant time. A malformed hash matches nothing.
func VerifyPassword(phc, password string) bool {
	p, salt, want, err := parseHash(phc)
	if err != nil {
		return false
	}
	got := idKey([]byte(password), salt, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// decoyHash is what a login for a user that does not exist is checked
// against, so that it costs the same as one for a user that does.
var decoyHash = sync.OnceValue(func() string { return HashPassword("nimbus: no such user") })
