package model

import (
	"strconv"
	"time"
)

// Budget is a namespace's monthly spending limit, in the currency of
// the prices that apply to it, with the thresholds (percentages of it)
// whose crossing is notified, by spend or by forecast, once each a
// month; with HardLimit, the namespace's invocations are refused once
// the month's spend reaches it, until the month ends or the budget is
// raised.
type Budget struct {
	Namespace string    `json:"namespace"`
	Monthly   float64   `json:"monthly"`
	Notify    []int     `json:"notify,omitempty"` // percentages, ascending
	HardLimit bool      `json:"hard_limit,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// What the leader's budget check recorded for Month (YYYY-MM, UTC):
	// the alerts sent ("spend:50", "forecast:80") and whether the spend
	// reached Monthly. A new month starts with none.
	Month    string   `json:"month,omitempty"`
	Alerts   []string `json:"alerts,omitempty"`
	Exceeded bool     `json:"exceeded,omitempty"`
}

// BudgetStatus is a budget with the month's spend and forecast so far,
// in the currency of the namespace's prices.
type BudgetStatus struct {
	Budget
	Currency string
	Spent    float64
	Forecast float64
}

// Budget alert kinds: the month's spend so far, or its forecast.
const (
	AlertSpend    = "spend"
	AlertForecast = "forecast"
)

// BudgetAlert is one threshold of a budget crossed in a month.
type BudgetAlert struct {
	Namespace string  `json:"namespace"`
	Month     string  `json:"month"`
	Kind      string  `json:"kind"`      // AlertSpend or AlertForecast
	Threshold int     `json:"threshold"` // percent of Monthly
	Monthly   float64 `json:"monthly"`
	Amount    float64 `json:"amount"` // the spend or forecast that crossed it
	Currency  string  `json:"currency"`
}

// Key names the alert within its month: "spend:50".
func (a BudgetAlert) Key() string {
	return a.Kind + ":" + strconv.Itoa(a.Threshold)
}
