// Package hangar holds Hangar's domain nouns (apps, versions, database
// instances, users), their validation rules and the error kinds every layer
// shares. It imports only the standard library; every other package may
// import it.
package hangar

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers: the API maps each kind to one HTTP
// status, in one place.
type Kind string

// Error kinds.
const (
	KindInternal     Kind = "internal"
	KindNotFound     Kind = "not_found"
	KindInvalid      Kind = "invalid"
	KindConflict     Kind = "conflict"
	KindUnauthorized Kind = "unauthorized"
	KindForbidden    Kind = "forbidden"
	KindUnavailable  Kind = "unavailable"
	KindTooLarge     Kind = "too_large"
	KindTooMany      Kind = "too_many_requests" // a rate limit: try again later
)

// Error is a domain error: its Message is safe to show to users. Any error
// that is not (or does not wrap) an *Error is internal and its text is never
// shown to clients.
type Error struct {
	Kind    Kind
	Message string
	// Detail is optional extra text safe to show (for example a build log
	// tail); the API sends it as DetailedError.
	Detail string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain,
// or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// MessageOf returns the user-safe message of err, or "" when err is internal.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}
