package sigv4

import (
	"errors"
	"net/http"
)

// The sentinels Verify's errors wrap; test them with errors.Is. The
// wrapping error's message says what was wrong with the request and what
// to fix.
var (
	// ErrMissing: the request carries no SigV4 authentication at all (no
	// Authorization header, or one of another scheme such as Bearer). The
	// caller should try its other schemes.
	ErrMissing = errors.New("sigv4: the request is not signed with AWS Signature Version 4")
	// ErrMalformed: an AWS Authorization header that cannot be read, a
	// missing or unreadable date, or a form Nimbus does not take
	// (presigned URLs, unsigned or streamed payloads, other algorithms).
	ErrMalformed = errors.New("sigv4: malformed AWS Signature Version 4 authentication")
	// ErrUnknownKey: the credential's access key id is not a key the
	// server knows (or no longer accepts).
	ErrUnknownKey = errors.New("sigv4: unknown access key id")
	// ErrExpired: the request's time is more than MaxSkew away from the
	// server's clock.
	ErrExpired = errors.New("sigv4: signature expired")
	// ErrSignature: the signature does not match the request, the body
	// does not match its declared hash, or the credential scope is not
	// one this server signs for (date, service, terminator).
	ErrSignature = errors.New("sigv4: signature does not match")
)

// AWSError returns the error type AWS Lambda answers a failed
// authentication with (sent as the X-Amzn-ErrorType header and the body's
// "__type"/"Type") and the HTTP status it comes with. AWS SDKs raise an
// exception of that name, so clients can tell the cases apart exactly as
// they do against AWS:
//
//	ErrMissing     MissingAuthenticationTokenException  403
//	ErrMalformed   IncompleteSignatureException         400
//	ErrUnknownKey  UnrecognizedClientException          403
//	ErrExpired     InvalidSignatureException            403 ("Signature expired: …")
//	ErrSignature   InvalidSignatureException            403
//
// AWS Lambda reports an expired signature and a wrong credential scope as
// InvalidSignatureException too, with the reason in the message. Any other
// error maps to ("", 0): it is not an authentication failure.
func AWSError(err error) (errorType string, status int) {
	switch {
	case errors.Is(err, ErrMissing):
		return "MissingAuthenticationTokenException", http.StatusForbidden
	case errors.Is(err, ErrMalformed):
		return "IncompleteSignatureException", http.StatusBadRequest
	case errors.Is(err, ErrUnknownKey):
		return "UnrecognizedClientException", http.StatusForbidden
	case errors.Is(err, ErrExpired), errors.Is(err, ErrSignature):
		return "InvalidSignatureException", http.StatusForbidden
	}
	return "", 0
}
