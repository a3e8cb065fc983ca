package model

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Latest is the qualifier of a function's mutable head: the revision a
// deploy last made. Published versions are numbered from 1 and never
// change.
const Latest = "$LATEST"

// Alias is a name for a published version of a function (or for
// $LATEST), that callers invoke as NAME:ALIAS. Routing, when set, sends
// a share of the alias's invocations to a second version: a weighted
// rollout. Aliases change; the versions they name do not.
type Alias struct {
	Namespace   string        `json:"namespace"`
	Function    string        `json:"function"`
	Name        string        `json:"name"`
	Version     int64         `json:"version"` // 0: $LATEST
	Description string        `json:"description,omitempty"`
	Routing     *AliasRouting `json:"routing,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// AliasRouting sends Weight (more than 0, less than 1) of an alias's
// invocations to Version instead of the alias's own.
type AliasRouting struct {
	Version int64   `json:"version"`
	Weight  float64 `json:"weight"`
}

// Pick returns the version an invocation through the alias runs, given
// r drawn uniformly from [0, 1).
func (a Alias) Pick(r float64) int64 {
	if a.Routing != nil && r < a.Routing.Weight {
		return a.Routing.Version
	}
	return a.Version
}

// Limits of versions and aliases.
const (
	MaxVersionDescription = 256
	MaxAliasesPerFunction = 100
)

var aliasRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidAliasName reports whether name can name an alias: 1-128
// letters, digits, '-' and '_', not all digits (that would read as a
// version).
func ValidAliasName(name string) bool {
	if !aliasRe.MatchString(name) {
		return false
	}
	_, err := strconv.ParseUint(name, 10, 63)
	return err != nil
}

// SplitQualifier splits a function reference NAME[:QUALIFIER] into the
// function's name and its qualifier ("" when there is none). Function
// names hold no ':'.
func SplitQualifier(ref string) (name, qualifier string) {
	name, qualifier, _ = strings.Cut(ref, ":")
	return name, qualifier
}

// Qualifier is what a function reference's qualifier names: the head
// (Latest), a version (Version > 0) or an alias (Alias != "").
type Qualifier struct {
	Latest  bool
	Version int64
	Alias   string
}

// ParseQualifier reads a qualifier: "" or $LATEST is the head, a number
// a version, anything else that can name an alias an alias.
func ParseQualifier(q string) (Qualifier, error) {
	switch {
	case q == "" || q == Latest:
		return Qualifier{Latest: true}, nil
	case q[0] >= '0' && q[0] <= '9' && strings.Trim(q, "0123456789") == "":
		v, err := strconv.ParseInt(q, 10, 64)
		if err != nil || v < 1 {
			return Qualifier{}, fmt.Errorf("version %q is not a version number (1, 2, ...)", q)
		}
		return Qualifier{Version: v}, nil
	case ValidAliasName(q):
		return Qualifier{Alias: q}, nil
	}
	return Qualifier{}, fmt.Errorf("qualifier %q is neither $LATEST, a version number nor an alias name (1-128 letters, digits, '-' and '_')", q)
}

// VersionString is a version as Lambda writes it: "$LATEST" for 0, else
// the number.
func VersionString(v int64) string {
	if v == 0 {
		return Latest
	}
	return strconv.FormatInt(v, 10)
}

// ParseVersion reads a version as VersionString writes it.
func ParseVersion(s string) (int64, error) {
	q, err := ParseQualifier(s)
	if err != nil || q.Alias != "" {
		return 0, fmt.Errorf("version %q is neither $LATEST nor a version number (1, 2, ...)", s)
	}
	return q.Version, nil
}
