package model

import (
	"encoding/json"
	"time"
)

// Schedule fires a function on a cron or rate expression.
type Schedule struct {
	Name       string          `json:"name"`
	Namespace  string          `json:"namespace"`
	Function   string          `json:"function"`
	Expression string          `json:"expression"`
	Event      json.RawMessage `json:"event,omitempty"`
	Timezone   string          `json:"timezone,omitempty"`
	Policy     string          `json:"policy,omitempty"` // allow ("") or forbid
	Disabled   bool            `json:"disabled,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	// Set by the scheduler's fires.
	LastSlot    time.Time `json:"last_slot,omitzero"`
	LastRequest string    `json:"last_request,omitempty"`
	Fires       int64     `json:"fires"`
	Missed      int64     `json:"missed"`
	// NextFire is computed when read (service); stored zero.
	NextFire time.Time `json:"next_fire,omitzero"`
}
